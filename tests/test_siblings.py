"""Sibling imports: the files beside pipeline.toml import each other as a script would."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tipi import Permanence, PipelineProcess
from tipi.errors import DefinitionError
from tipi.registry import Registry
from tipi.siblings import SiblingShadowWarning

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


# Script-style sibling imports: `from models import Net` as `python train.py` would resolve it.

MODELS = """
from tipi import Permanence
import helpers


class Net(Permanence):
    scale = helpers.SCALE

    def cleanup(self) -> None:
        pass
"""

SCRIPT_STYLE = """
from tipi import PipelineProcess
import helpers
from models import Net
from .models import Net as RelativeNet
from . import helpers as relative_helpers


def lazy_scale():
    import helpers

    return helpers.SCALE


class Step(PipelineProcess):
    net, relative_net = Net, RelativeNet
    helpers, relative_helpers = helpers, relative_helpers

    def execute(self) -> None:
        pass
"""


def module_of(registry: Registry, name: str):
    return sys.modules[registry.local()[name].__module__]


def test_siblings_import_like_a_script_as_the_same_module_objects(project):
    folder = project.pipeline("p", "", models=MODELS, helpers="SCALE = 3\n", steps=SCRIPT_STYLE)
    registry = Registry(folder, project.root)
    step = registry.resolve("Step", PipelineProcess)
    net = registry.resolve("Net", Permanence)
    assert step.net is step.relative_net is net
    assert step.helpers is step.relative_helpers
    assert net.scale == 3
    import models

    assert models is module_of(registry, "Net")
    assert models.Net is net
    assert models.__spec__.name == models.__name__ == net.__module__  # its own spec, kept
    assert importlib.reload(models).Net.scale == 3  # reloads the file it came from


def test_a_sibling_package_imports_dotted_like_a_script(project):
    steps = """
    from tipi import PipelineProcess
    import nets.resnet
    from nets.resnet import ResNet
    from .nets.resnet import ResNet as RelativeResNet


    class Step(PipelineProcess):
        classes = (ResNet, RelativeResNet, nets.resnet.ResNet)

        def execute(self) -> None:
            pass
    """
    folder = project.pipeline("p", "", steps=steps)
    (folder / "nets").mkdir()
    (folder / "nets/__init__.py").write_text("from . import layers\n")
    (folder / "nets/layers.py").write_text("WIDTH = 8\n")
    (folder / "nets/resnet.py").write_text(
        "from nets.layers import WIDTH\n\nclass ResNet:\n    width = WIDTH\n"
    )
    step = Registry(folder, project.root).resolve("Step", PipelineProcess)
    resnet, relative, attribute = step.classes
    assert resnet is relative is attribute
    assert resnet.width == 8
    assert sys.modules["nets.layers"] is sys.modules["nets"].layers
    with pytest.raises(ModuleNotFoundError, match="No module named 'nets.missing'"):
        importlib.import_module("nets.missing")


def test_two_pipelines_with_same_named_siblings_each_see_their_own(project):
    a = project.pipeline("a", "", models=MODELS, helpers="SCALE = 1\n", steps=SCRIPT_STYLE)
    b = project.pipeline("b", "", models=MODELS, helpers="SCALE = 2\n", steps=SCRIPT_STYLE)
    plain = project.pipeline(
        "plain", "", steps=LOCAL.replace("from .helpers import SCALE", "SCALE = 0")
    )
    first = Registry(a, project.root)
    assert first.resolve("Net", Permanence).scale == 1
    assert module_of(first, "Step").lazy_scale() == 1
    second = Registry(b, project.root)
    assert second.resolve("Net", Permanence).scale == 2
    assert module_of(second, "Step").lazy_scale() == 2
    assert sys.modules["models"].Net is second.resolve("Net", Permanence)
    Registry(plain, project.root).names()  # no models.py: the old aliases are gone
    assert "models" not in sys.modules and "helpers" not in sys.modules
    assert Registry(a, project.root).resolve("Net", Permanence).scale == 1


def test_an_edited_sibling_is_seen_by_a_new_registry(project):
    folder = project.pipeline("p", "", models=MODELS, helpers="SCALE = 1\n", steps=SCRIPT_STYLE)
    old = Registry(folder, project.root)
    assert old.resolve("Net", Permanence).scale == 1
    (folder / "helpers.py").write_text("SCALE = 22\n")  # another size: a stale .pyc cannot pass
    new = Registry(folder, project.root)
    assert new.resolve("Net", Permanence).scale == 22
    assert module_of(new, "Step").lazy_scale() == 22
    assert new.resolve("Net", Permanence) is not old.resolve("Net", Permanence)
    (folder / "helpers.py").write_text("SCALE = 333\n")  # and again: each registry re-imports
    assert Registry(folder, project.root).resolve("Net", Permanence).scale == 333


def test_a_fixed_nested_module_is_imported_afresh_after_a_failed_import(project):
    # nets/layers.py imports fine, nets/__init__.py fails on it and Python drops `nets`
    # alone: the next registry must not keep the old nets.layers.
    folder = project.pipeline("p", "", steps="from .nets import Conv, Pool\n")
    (folder / "nets").mkdir()
    (folder / "nets" / "__init__.py").write_text("from .layers import Conv, Pool\n")
    (folder / "nets" / "layers.py").write_text("class Conv: pass\n")
    with pytest.raises(DefinitionError, match="cannot import name 'Pool'"):
        Registry(folder, project.root).names()
    (folder / "nets" / "layers.py").write_text("class Conv: pass\n\n\nclass Pool: pass\n")
    assert "Step" not in Registry(folder, project.root).names()  # imports, no error


def test_a_sibling_never_shadows_the_standard_library_or_an_imported_module(project):
    steps = """
    from tipi import PipelineProcess
    import random
    from pytest import approx
    from . import random as mine
    from .pytest import OWN


    class Step(PipelineProcess):
        parts = (random, approx, mine, OWN)

        def execute(self) -> None:
            pass
    """
    folder = project.pipeline("p", "", steps=steps, random="VALUE = 1\n", pytest="OWN = 2\n")
    with pytest.warns(SiblingShadowWarning) as caught:
        step = Registry(folder, project.root).resolve("Step", PipelineProcess)
    random, approx, mine, own = step.parts
    assert random is sys.modules["random"] and approx is pytest.approx
    assert mine.VALUE == 1 and own == 2
    messages = sorted((Path(w.filename).name, w.lineno, str(w.message)) for w in caught)
    assert [m[:2] for m in messages] == [("steps.py", 2), ("steps.py", 3)]
    assert "'random' gets the standard-library module, not random.py" in messages[0][2]
    assert "`from . import random`" in messages[0][2]
    assert "'pytest' gets the already imported module, not pytest.py" in messages[1][2]


def test_a_shadowing_sibling_imported_only_relatively_is_not_warned_about(project):
    steps = "from tipi import PipelineProcess\nfrom .random import VALUE\nimport json\n"
    folder = project.pipeline("p", "", steps=steps, random="import random\nVALUE = 1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Registry(folder, project.root).names()


def test_project_root_packages_import_like_a_script_and_afresh(project):
    (project.root / "mylib").mkdir()
    (project.root / "mylib/__init__.py").write_text("")
    (project.root / "mylib/text.py").write_text("TIMES = 2\n")
    (project.root / "helpers.py").write_text("SCALE = -1\n")  # the sibling comes first
    steps = """
    from tipi import PipelineProcess
    import helpers
    from mylib.text import TIMES


    class Step(PipelineProcess):
        times, scale = TIMES, helpers.SCALE

        def execute(self) -> None:
            pass
    """
    folder = project.pipeline("p", "", steps=steps, helpers="SCALE = 3\n")
    step = Registry(folder, project.root).resolve("Step", PipelineProcess)
    assert (step.times, step.scale) == (2, 3)
    (project.root / "mylib/text.py").write_text("TIMES = 33\n")
    assert Registry(folder, project.root).resolve("Step", PipelineProcess).times == 33


def test_same_named_project_root_packages_of_two_projects_do_not_mix(tmp_path):
    for name, value in (("one", 1), ("two", 2)):
        (tmp_path / name / "mylib").mkdir(parents=True)
        (tmp_path / name / "mylib/__init__.py").write_text("")
        parts = LOCAL.replace("from .helpers import SCALE", f"SCALE = {value}")
        (tmp_path / name / "mylib/parts.py").write_text(parts)
    values = [
        Registry(None, tmp_path / name).resolve("mylib.parts:Step", PipelineProcess).scale
        for name in ("one", "two", "one")
    ]
    assert values == [1, 2, 1]


LAZY_PIPELINE = """
[processes.one]
type = "Lazy"
outputs = { out = "out/one.txt" }

[processes.two]
type = "Lazy"
outputs = { out = "out/two.txt" }
"""

LAZY_STEPS = """
import os
from tipi import PipelineProcess
from models import Net


class Lazy(PipelineProcess):
    def execute(self) -> None:
        import helpers
        import models

        same = models.Net is Net and isinstance(Net(), models.Net)
        self.outputs["out"].write_text(f"{helpers.SCALE} {same} {os.getpid()}")
"""


@pytest.mark.slow
def test_lazy_script_style_imports_work_in_a_real_make_and_in_workers(project, cli):
    models = MODELS.replace("Permanence", "object").replace("from tipi import object\n", "")
    project.pipeline("lazy", LAZY_PIPELINE, steps=LAZY_STEPS, models=models, helpers="SCALE = 1\n")
    parallel = cli("make", "-j", "2")
    assert parallel.exit_code == 0, parallel.stderr
    for name in ("one", "two"):
        scale, same, pid = project.read(f"out/{name}.txt").split()
        assert (scale, same) == ("1", "True") and int(pid) != os.getpid()
    (project.root / "pipelines/lazy/helpers.py").write_text("SCALE = 22\n")
    again = cli("make", "-F")
    assert again.exit_code == 0, again.stderr
    assert project.read("out/one.txt") == f"22 True {os.getpid()}"


@pytest.mark.slow
def test_the_multifile_example_runs_as_a_script_and_as_a_pipeline(tmp_path):
    project = tmp_path / "multifile"
    shutil.copytree(REPO / "examples/multifile", project, ignore=shutil.ignore_patterns("out"))
    folder = project / "pipelines/multifile"
    env = {**os.environ, "EPOCHS": "1", "CI": "true"}

    def run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )

    script = run(sys.executable, "train.py", cwd=folder)
    assert script.returncode == 0, script.stderr
    assert "test accuracy:" in script.stdout
    shutil.rmtree(folder / "out")
    tipi = str(Path(sys.executable).parent / "tipi")
    made = run(tipi, "make", cwd=project)
    assert made.returncode == 0, made.stderr
    assert float((project / "out/accuracy.txt").read_text()) > 0.5
    assert "up to date: 2 skipped" in run(tipi, "make", cwd=project).stderr


# A pytorch-cifar-style main.py (kuangliu/pytorch-cifar): argparse at module level.
CIFAR_MAIN = """
import argparse
import os
import sys

parser = argparse.ArgumentParser(description="PyTorch CIFAR10 Training")
parser.add_argument("--lr", default=0.1, type=float, help="learning rate")
parser.add_argument("--resume", "-r", action="store_true", help="resume from checkpoint")
args = parser.parse_args()
with open(os.environ["ARGV_SEEN"], "w") as seen:
    seen.write(repr(sys.argv))
"""

PLAIN = """
[processes.noop]
type = "PrepareDigits"
"""


def test_a_script_with_module_level_argparse_never_reads_tipis_argv(project, cli, monkeypatch):
    """tipi imports every sibling with `sys.argv` reduced to the file's path (what
    `python main.py` sees), restored afterwards; a script that exits at import (required
    arguments) is one error naming the file and the main guard."""
    import sys as the_sys

    folder = project.pipeline("c3", PLAIN, main=CIFAR_MAIN)
    argv = ["tipi", "status", "-p", "c3"]
    monkeypatch.setattr(the_sys, "argv", list(argv))
    seen = project.root / "argv.txt"
    monkeypatch.setenv("ARGV_SEEN", str(seen))
    result = cli("status", "-p", "c3")
    assert result.exit_code == 0, result.stderr
    assert "unrecognized arguments" not in result.stderr
    assert the_sys.argv == argv
    assert seen.read_text() == repr([str(folder / "main.py")])

    required = CIFAR_MAIN.replace(
        '"--resume", "-r", action="store_true"', '"--data", required=True'
    )
    project.pipeline("c4", PLAIN, main=required)
    result = cli("status", "-p", "c4")
    assert result.exit_code != 0
    assert "main.py" in result.stderr and "ran its command line and exited (SystemExit 2" in (
        result.stderr
    )
    assert "the following arguments are required: --data" in result.stderr
    assert 'under `if __name__ == "__main__":`' in result.stderr
    assert "usage:" not in result.stderr and "Traceback" not in result.stderr
    assert the_sys.argv == argv


def test_a_factory_module_named_in_toml_is_imported_as_a_script(tmp_path, monkeypatch):
    """`model = "cifar_main:net"` at the project root: imported with the argv a script sees;
    exiting at import is one error naming the file and the main guard."""
    import sys as the_sys

    from tipi.permanences.factory import build

    (tmp_path / "cifar_main.py").write_text(
        CIFAR_MAIN.replace("ARGV_SEEN", "ARGV_OUT") + "\n\ndef net():\n    return list(sys.argv)\n"
    )
    required = CIFAR_MAIN.replace(
        '"--resume", "-r", action="store_true"', '"--data", required=True'
    )
    (tmp_path / "cifar_strict.py").write_text(required + "\n\ndef net():\n    return 1\n")
    seen = tmp_path / "argv.txt"
    monkeypatch.setenv("ARGV_OUT", str(seen))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(the_sys, "argv", ["tipi", "make", "-p", "c3"])
    try:
        build("cifar_main:net", {}, {}, "model")
        assert seen.read_text() == repr([str(tmp_path / "cifar_main.py")])
        with pytest.raises(DefinitionError) as caught:
            build("cifar_strict:net", {}, {}, "model")
        message = str(caught.value)
        assert "importing cifar_strict.py ran its command line and exited (SystemExit 2" in message
        assert "required: --data" in message
        assert 'under `if __name__ == "__main__":`' in caught.value.hint
        assert the_sys.argv == ["tipi", "make", "-p", "c3"]
    finally:
        for name in ("cifar_main", "cifar_strict"):
            the_sys.modules.pop(name, None)


def test_a_type_named_by_module_path_is_imported_as_a_script(project, cli, monkeypatch):
    """`type = "trainer.main:Step"` (a module outside the pipeline folder): imported with the
    argv a script sees, like siblings and factories."""
    import sys as the_sys

    package = project.root / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(
        CIFAR_MAIN
        + "\nfrom tipi import PipelineProcess\n\n\nclass Step(PipelineProcess):\n"
        + '    outputs = {"x": "out/x.txt"}\n\n    def execute(self):\n'
        + '        self.outputs["x"].write_text("x")\n'
    )
    project.pipeline("c5", '[processes.step]\ntype = "trainer.main:Step"\n')
    seen = project.root / "argv.txt"
    monkeypatch.setenv("ARGV_SEEN", str(seen))
    monkeypatch.setattr(the_sys, "argv", ["tipi", "status", "-p", "c5"])
    result = cli("status", "-p", "c5")
    assert result.exit_code == 0, result.stderr
    assert seen.read_text() == repr([str(package / "main.py")])
