"""Type resolution: local classes, built-ins, dotted paths, and the errors for each."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tipi import Permanence, PipelineProcess
from tipi.definitions import check_constructed
from tipi.errors import DefinitionError, Location
from tipi.registry import Registry

REPO = Path(__file__).parent.parent

LOCAL = """
from tipi import Permanence, PipelineProcess
from .helpers import SCALE


class Thing(Permanence):
    def cleanup(self) -> None:
        pass


class Step(PipelineProcess):
    scale = SCALE

    def execute(self) -> None:
        pass
"""


def test_local_classes_are_found_and_siblings_import_relatively(project):
    folder = project.pipeline("p", "", steps=LOCAL, helpers="SCALE = 3\n")
    registry = Registry(folder, project.root)
    assert registry.resolve("Thing", Permanence).__name__ == "Thing"
    step = registry.resolve("Step", PipelineProcess)
    assert step.scale == 3
    assert {"Thing", "Step"} <= set(registry.names())


def test_same_file_names_in_two_pipelines_do_not_collide(project):
    a = project.pipeline("a", "", steps=LOCAL, helpers="SCALE = 1\n")
    b = project.pipeline("b", "", steps=LOCAL, helpers="SCALE = 2\n")
    assert Registry(a, project.root).resolve("Step", PipelineProcess).scale == 1
    assert Registry(b, project.root).resolve("Step", PipelineProcess).scale == 2


def test_dotted_path_resolves_against_the_project_root(project):
    package = project.root / "mylib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "parts.py").write_text(LOCAL.replace("from .helpers import SCALE", "SCALE = 9"))
    registry = Registry(None, project.root)
    assert registry.resolve("mylib.parts:Step", PipelineProcess).scale == 9


def test_builtin_names_are_imported_lazily(project):
    registry = Registry(None, project.root, builtins={"Runner": "tipi.engine:PipelineRunner"})
    assert "Runner" in registry.names()
    with pytest.raises(DefinitionError, match="is a PipelineRunner object|is a type object"):
        registry.resolve("Runner", PipelineProcess)


def test_unknown_name_suggests_close_matches(project):
    folder = project.pipeline("p", "", steps=LOCAL, helpers="SCALE = 3\n")
    with pytest.raises(DefinitionError) as info:
        Registry(folder, project.root).resolve("Thng", Permanence)
    assert info.value.hint == "did you mean 'Thing'?"


def test_wrong_kind_is_rejected_with_where_it_belongs(project):
    folder = project.pipeline("p", "", steps=LOCAL, helpers="SCALE = 3\n")
    with pytest.raises(DefinitionError, match="is a permanence, but a process"):
        Registry(folder, project.root).resolve("Thing", PipelineProcess)


def test_bad_dotted_paths(project):
    registry = Registry(None, project.root)
    with pytest.raises(DefinitionError, match="cannot import module 'nope.mod'"):
        registry.resolve("nope.mod:X", PipelineProcess)
    with pytest.raises(DefinitionError, match="has no attribute 'Pipelineprocess'") as info:
        registry.resolve("tipi:Pipelineprocess", PipelineProcess)
    assert "PipelineProcess" in info.value.hint


def test_syntax_error_in_a_local_file_names_file_and_line(project):
    folder = project.pipeline("p", "", steps="x = 1\ndef broken(:\n")
    with pytest.raises(DefinitionError) as info:
        Registry(folder, project.root).resolve("X", PipelineProcess)
    assert info.value.location.file.name == "steps.py"
    assert info.value.location.line == 2


def test_import_error_in_a_local_file_names_the_line(project):
    folder = project.pipeline("p", "", steps="import os\nimport not_a_module_anywhere\n")
    with pytest.raises(DefinitionError, match="No module named 'not_a_module_anywhere'") as info:
        Registry(folder, project.root).names()
    assert info.value.location.line == 2


def test_a_type_defined_twice_is_an_error(project):
    dup = (
        "from tipi import PipelineProcess\n"
        "class Step(PipelineProcess):\n    def execute(self): pass\n"
    )
    folder = project.pipeline("p", "", a=dup, b=dup)
    with pytest.raises(DefinitionError, match="defined twice: in a.py and b.py"):
        Registry(folder, project.root).names()


def test_abstract_and_imported_classes_are_not_registered(project):
    folder = project.pipeline(
        "p",
        "",
        steps="from tipi import PipelineProcess\nfrom tipi.permanence import Permanence\n"
        "class Base(PipelineProcess):\n    pass\n",
    )
    assert Registry(folder, project.root).local() == {}


# Definitions that explain themselves: a class the engine could not build or run is named,
# with its file and line and the fix, before anything runs (exit 2).

BROKEN = """
from __future__ import annotations

from abc import abstractmethod

from tipi import Permanence, PipelineProcess


class First(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text("ran")


class Store(Permanence):
    def initialize(self) -> None:
        pass

    def close(self) -> None:
        pass


class Needy(Permanence):
    def __init__(self, controller, size: int = 1) -> None:
        self.size = size

    def cleanup(self) -> None:
        pass


class NoExecute(PipelineProcess):
    def run(self) -> None:
        pass


class NoForce(PipelineProcess):
    def __init__(self, controller, n: int = 1) -> None:
        super().__init__(controller)
        self.n = n

    def execute(self) -> None:
        pass


class Ctrl(PipelineProcess):
    def __init__(self, ctrl, force: bool = False) -> None:
        super().__init__(ctrl, force)

    def execute(self) -> None:
        pass


class NoSuper(PipelineProcess):
    def __init__(self, controller, force: bool = False, n: int = 1) -> None:
        self.n = n

    def execute(self) -> None:
        pass


class HalfByHand(PipelineProcess):
    def __init__(self, controller, force: bool = False) -> None:
        self.controller = controller

    def execute(self) -> None:
        pass


class NoSuperBase(PipelineProcess):
    def __init__(self, controller, force: bool = False) -> None:
        self.ready = True


class Inherits(NoSuperBase):
    def execute(self) -> None:
        pass


class Model(PipelineProcess):
    def execute(self) -> None:
        self.build()

    @abstractmethod
    def build(self) -> None: ...


class Half(Model):
    pass


class Device(Permanence):
    pass
"""

CASES = {
    # type: (section, where the fix goes, message, hint)
    "Store": (
        "permanences",
        "class Store(",
        "class Store has no cleanup(): a permanence must define cleanup() "
        "(it is always called, even after a failure)",
        "add to Store: `def cleanup(self) -> None:` releasing what initialize() acquired "
        "(`pass` if nothing); or, if close() is meant to be it, rename it to cleanup()",
    ),
    "Device": (  # a local class shadows the built-in of its name, abstract or not
        "permanences",
        "class Device(",
        "class Device has no cleanup(): a permanence must define cleanup()",
        "add to Device: `def cleanup(self) -> None:`",
    ),
    "Needy": (
        "permanences",
        "def __init__(self, controller, size",
        "Needy.__init__ requires controller, which a permanence is never given: "
        "the engine constructs it as Needy(**params)",
        "remove controller from its parameters (self.controller is set before initialize())",
    ),
    "NoExecute": (
        "processes",
        "class NoExecute(",
        "class NoExecute has no execute(): a process must define execute() "
        "(it does the step's work)",
        "add to NoExecute: `def execute(self) -> None:` reading self.inputs and writing "
        "self.outputs; or, if run() is meant to be it, rename it to execute()",
    ),
    "NoForce": (
        "processes",
        "def __init__(self, controller, n",
        "NoForce.__init__ does not accept force: the engine constructs a process as "
        "NoForce(controller, force=..., **params)",
        "declare `def __init__(self, controller, force: bool = False, n: int = 1) -> None` "
        "and call `super().__init__(controller, force)` first",
    ),
    "Ctrl": (
        "processes",
        "def __init__(self, ctrl",
        "Ctrl.__init__ takes `ctrl` first, not controller: the engine constructs a process as "
        "Ctrl(controller, force=..., **params) and reads every other parameter as a param",
        "declare `def __init__(self, controller, force: bool = False, ...)` and call "
        "`super().__init__(controller, force)` first",
    ),
    "NoSuper": (
        "processes",
        "def __init__(self, controller, force: bool = False, n",
        "NoSuper.__init__ never calls super().__init__(controller, force), "
        "so self.controller and self.force are never set",
        "add `super().__init__(controller, force)` at the top of NoSuper.__init__",
    ),
    "HalfByHand": (
        "processes",
        "def __init__(self, controller, force: bool = False) -> None:\n        self.controller",
        "HalfByHand.__init__ never calls super().__init__(controller, force), "
        "so self.force is never set",
        "add `super().__init__(controller, force)` at the top of HalfByHand.__init__",
    ),
    "Inherits": (
        "processes",
        "def __init__(self, controller, force: bool = False) -> None:\n        self.ready",
        "Inherits.__init__ (inherited from NoSuperBase) never calls super().__init__",
        "add `super().__init__(controller, force)` at the top of NoSuperBase.__init__",
    ),
    "Half": (
        "processes",
        "class Half(",
        "class Half is abstract: it does not define build(), declared abstract in Model",
        "define build() in Half, or name a subclass that does in `type`",
    ),
}


def line_of(source: str, text: str) -> int:
    """The line of `text` in `source` as the `project` fixture writes it."""
    written = textwrap.dedent(source).lstrip()
    return written[: written.index(text)].count("\n") + 1


def one_error(result) -> tuple[str, str]:
    """The error and hint of a run that failed on a definition: exit 2, two lines, no trace."""
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    return lines[0].removeprefix("error: "), lines[1].removeprefix("hint: ")


def broken_pipeline(section: str, type_name: str) -> str:
    named = f'[{section}.broken]\ntype = "{type_name}"\n'
    if section == "processes":
        named += 'outputs = { out = "out/broken.txt" }\n'
    return f'[processes.first]\ntype = "First"\noutputs = {{ out = "out/first.txt" }}\n\n{named}'


@pytest.mark.parametrize("type_name", list(CASES))
def test_a_class_the_engine_cannot_build_or_run_is_one_line_before_anything_runs(
    project, cli, type_name
):
    section, marker, message, hint = CASES[type_name]
    project.pipeline("p", broken_pipeline(section, type_name), steps=BROKEN)
    error, shown_hint = one_error(cli("make"))
    assert error.startswith(f"pipelines/p/steps.py:{line_of(BROKEN, marker)}: {message}"), error
    assert shown_hint.startswith(hint), shown_hint
    assert not (project.root / "out").exists()  # not even the sound first step ran


def test_a_dotted_or_built_in_abstract_class_points_at_its_own_file(project, cli):
    (project.root / "shared.py").write_text(textwrap.dedent(BROKEN).lstrip())
    project.pipeline(
        "p", broken_pipeline("processes", "shared:NoExecute").replace("First", "shared:First")
    )
    error, hint = one_error(cli("make"))
    assert error.startswith(f"shared.py:{line_of(BROKEN, 'class NoExecute(')}: class NoExecute")
    assert "`def execute(self) -> None:`" in hint
    registry = Registry(None, project.root, builtins={"Stored": "shared:Store"})
    with pytest.raises(DefinitionError, match="class Store has no cleanup()") as info:
        registry.resolve("Stored", Permanence)
    assert info.value.location.file == project.root / "shared.py"


SOUND = """
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

from tipi import Permanence, PipelineProcess
from tipi.decorators import pipeline_process


class Store(Permanence):
    def __init__(self, size: int = 1) -> None:
        self.size = size

    def cleanup(self) -> None:
        pass


class BaseStep(PipelineProcess):
    def execute(self) -> None:
        self.outputs["out"].write_text(self.text())

    @abstractmethod
    def text(self) -> str: ...


class Hello(BaseStep):
    def __init__(self, controller, force: bool = False, word: str = "hi") -> None:
        super().__init__(controller, force)
        self.word = word

    def text(self) -> str:
        return self.word


class ByHand(BaseStep):
    def __init__(self, controller, force=False):
        self.controller, self.force = controller, force

    def text(self) -> str:
        return str(self.controller.get_permanence("store").size)


class Delegates(BaseStep):
    def __init__(self, controller, force: bool = False) -> None:
        self._setup(controller, force)

    def _setup(self, controller, force) -> None:
        PipelineProcess.__init__(self, controller, force)

    def text(self) -> str:
        return "delegated"


class Forwards(BaseStep):
    def __init__(self, *args, scale: int = 2, **kwargs) -> None:
        super(Forwards, self).__init__(*args, **kwargs)
        self.scale = scale

    def text(self) -> str:
        return str(self.scale)


@pipeline_process(outputs={"out": "out/decorated.txt"})
def decorated(out: Path, n: int = 2) -> None:
    out.write_text(str(n))
"""

SOUND_PIPELINE = """
[permanences.store]
type = "Store"
params = { size = 5 }

[processes.hello]
type = "Hello"
params = { word = "hey" }
outputs = { out = "out/hello.txt" }

[processes.by_hand]
type = "ByHand"
outputs = { out = "out/by_hand.txt" }

[processes.delegates]
type = "Delegates"
outputs = { out = "out/delegates.txt" }

[processes.forwards]
type = "Forwards"
params = { scale = 3 }
outputs = { out = "out/forwards.txt" }

[processes.decorated]
type = "decorated"
params = { n = 7 }
"""


def test_sound_classes_bases_with_execute_and_decorated_functions_still_run(project, cli):
    project.pipeline("p", SOUND_PIPELINE, steps=SOUND)
    result = cli("make")
    assert result.exit_code == 0, result.stderr
    names = ("hello", "by_hand", "delegates", "forwards", "decorated")
    assert [project.read(f"out/{name}.txt") for name in names] == [
        "hey",
        "5",
        "delegated",
        "3",
        "7",
    ]
    assert "BaseStep" not in Registry(project.root / "pipelines/p", project.root).local()


def test_tipi_list_skips_abstract_classes_and_lists_the_others_as_they_are(project, cli):
    project.pipeline("p", broken_pipeline("processes", "NoForce"), steps=BROKEN)
    result = cli("list")
    assert result.exit_code == 0, result.stderr
    listed = {line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line}
    assert {"First", "Needy", "NoForce", "Ctrl", "NoSuper", "HalfByHand", "Inherits"} <= listed
    assert not {"Store", "NoExecute", "NoSuperBase", "Model", "Half"} & listed
    assert "Device" in listed  # the built-in: an abstract local class is no type of its own


SNEAKY = """
from tipi import PipelineProcess


class Sneaky(PipelineProcess):
    def __init__(self, controller, force: bool = False) -> None:
        self.label = str(controller)  # handed to a call: the source check lets it pass

    def execute(self) -> None:
        self.outputs["out"].write_text("ran")
"""


def test_an_init_the_source_check_cannot_follow_is_caught_once_built(project, cli):
    folder = project.pipeline(
        "p", broken_pipeline("processes", "Sneaky"), steps=SNEAKY, more=BROKEN
    )
    sneaky = Registry(folder, project.root).resolve("Sneaky", PipelineProcess)  # passes
    with pytest.raises(DefinitionError) as info:
        check_constructed(sneaky(object(), force=False))
    assert str(info.value).endswith(
        "Sneaky.__init__ never calls super().__init__(controller, force), "
        "so self.controller and self.force are never set"
    )
    assert info.value.location == Location(file=folder / "steps.py", line=5)
    check_constructed(Registry(folder, project.root).resolve("First", PipelineProcess)(None))
    made = cli("make")  # the engine's guard, right after construction: a definition error
    assert made.exit_code == 2, made.stderr
    assert "Sneaky.__init__ never calls super().__init__(controller, force)" in made.stderr


def test_a_fixed_class_is_read_afresh_in_the_same_process(project, cli):
    project.pipeline("p", broken_pipeline("processes", "NoSuper"), steps=BROKEN)
    assert "NoSuper.__init__ never calls" in one_error(cli("make"))[0]
    fixed = BROKEN.replace(
        "        self.n = n\n\n    def execute(self) -> None:\n        pass\n\n\nclass HalfByHand",
        "        super().__init__(controller, force)\n"
        "        self.n = n\n\n    def execute(self) -> None:\n        pass\n\n\nclass HalfByHand",
    )
    assert fixed != BROKEN
    (project.root / "pipelines/p/steps.py").write_text(textwrap.dedent(fixed).lstrip())
    made = cli("make")  # planned and ran (its `pass` leaves its output unwritten: exit 1)
    assert "never calls" not in made.stderr and project.read("out/first.txt") == "ran"


BY_NAME = """
from abc import ABCMeta
from tipi import PipelineProcess


class ByName(ABCMeta):  # a plugin metaclass that tells classes apart by their name
    def __eq__(cls, other):
        return isinstance(other, type) and cls.__qualname__ == other.__qualname__

    def __hash__(cls):
        return hash(cls.__qualname__)


class Step(PipelineProcess, metaclass=ByName):
"""


def test_an_edited_class_is_checked_again_though_a_metaclass_makes_it_equal_to_the_old(project):
    folder = project.pipeline("p", "", steps=BY_NAME + "    def execute(self):\n        pass\n")
    old = Registry(folder, project.root).resolve("Step", PipelineProcess)  # kept alive
    broken = "    def __init__(self, lr: float = 0.1):\n        self.lr = lr\n\n"
    (folder / "steps.py").write_text(BY_NAME + broken + "    def execute(self):\n        pass\n")
    with pytest.raises(DefinitionError, match="takes `lr` first, not controller"):
        Registry(folder, project.root).resolve("Step", PipelineProcess)
    assert old.__init__ is PipelineProcess.__init__
