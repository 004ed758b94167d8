"""Code tipi imports counts: what runs when tipi imports the modules beside pipeline.toml, and
every module a computed import may load, is code of the steps (closure.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tipi.engine import Engine

PIPELINE = """
[processes.a]
type = "A"
outputs = { out = "out/a.txt" }

[processes.b]
type = "B"
outputs = { out = "out/b.txt" }

[processes.c]
type = "C"
outputs = { out = "out/c.txt" }
"""

# No step imports patch.py, plugins.py or dynmod_a.py: tipi does (every *.py beside
# pipeline.toml), and what runs then changes what a and b compute.
MODELS = """
class Net:
    def describe(self):
        return "plain"


REGISTRY = {}


def register(fn):
    REGISTRY[fn.__name__] = fn
    return fn
"""

PATCH = """
import models


def _describe(self):
    return "patched-1"


models.Net.describe = _describe


def spare():
    return 1
"""

PLUGINS = """
from models import register


@register
def plug():
    return "plugin-1"
"""

STEPS = """
from tipi import PipelineProcess
from models import Net, REGISTRY


class A(PipelineProcess):
    def execute(self):
        self.outputs["out"].write_text(Net().describe())


class B(PipelineProcess):
    def execute(self):
        self.outputs["out"].write_text(REGISTRY.get("plug", lambda: "none")())


class C(PipelineProcess):
    def execute(self):
        self.outputs["out"].write_text("c")
"""

DYNAMIC = """
import importlib


def load(suffix):
    return importlib.import_module("dynmod" + suffix)
"""

STEPS_DYNAMIC = STEPS.replace(
    'write_text("c")', 'write_text(__import__("loader").load("_a").VALUE)'
).replace("from models", "import loader\nfrom models")


@pytest.fixture
def proj(project):
    project.pipeline(
        "m", PIPELINE, models=MODELS, patch=PATCH, plugins=PLUGINS, steps=STEPS, loader=DYNAMIC
    )
    (project.root / "pipelines/m/dynmod_a.py").write_text('VALUE = "dyn-1"\n')
    return project


def make(**options) -> dict[str, tuple[str, tuple[str, ...]]]:
    summary = Engine("m").make(run_cache=False, **options)
    return {r.name: (r.outcome, r.reasons) for r in summary.results}


def outputs(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((root / "out").iterdir())}


def edit(project, module: str, old: str, new: str) -> None:
    path = project.root / "pipelines/m" / f"{module}.py"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def ran(result: dict) -> list[str]:
    return sorted(name for name, (outcome, _) in result.items() if outcome == "ran")


def same_as_clean(root: Path) -> None:
    """The incremental outputs are a clean build's."""
    incremental = outputs(root)
    shutil.rmtree(root / "out")
    shutil.rmtree(root / ".tipi_cache")
    make()
    assert outputs(root) == incremental


AT_LOAD = "(imported by tipi at load: module-level code)"


def test_a_sibling_no_step_imports_that_patches_a_class_counts_for_every_step(proj):
    make()
    assert outputs(proj.root)["a.txt"] == "patched-1"
    edit(proj, "patch", "patched-1", "patched-2")
    result = make()
    assert ran(result) == ["a", "b", "c"]  # the patch runs at load, for every step
    assert result["a"][1] == (f"code changed: pipelines/m/patch.py: _describe {AT_LOAD}",)
    assert outputs(proj.root)["a.txt"] == "patched-2"
    same_as_clean(proj.root)


def test_deleting_such_a_sibling_reruns_with_the_class_unpatched(proj):
    make()
    (proj.root / "pipelines/m/patch.py").unlink()
    result = make()
    assert ran(result) == ["a", "b", "c"]
    assert (
        f"code changed: pipelines/m/patch.py: <module> {AT_LOAD} (no longer reached)"
        in (result["a"][1])
    )
    assert outputs(proj.root)["a.txt"] == "plain"
    same_as_clean(proj.root)


def test_a_registry_filled_by_a_decorator_in_a_sibling_counts(proj):
    make()
    edit(proj, "plugins", "plugin-1", "plugin-2")
    result = make()
    assert result["b"] == ("ran", (f"code changed: pipelines/m/plugins.py: plug {AT_LOAD}",))
    assert outputs(proj.root)["b.txt"] == "plugin-2"
    (proj.root / "pipelines/m/plugins.py").unlink()
    assert make()["b"][0] == "ran"
    assert outputs(proj.root)["b.txt"] == "none"
    same_as_clean(proj.root)


def test_an_edit_that_runs_nothing_at_import_reruns_nothing(proj):
    make()
    edit(proj, "patch", "return 1", "return 2")  # a function nothing calls at import
    edit(proj, "models", "REGISTRY = {}", "REGISTRY = {}\nUNUSED = 3")  # an inert constant
    edit(proj, "steps", 'write_text("c")', 'write_text("c" + "")')  # C's own code
    result = make()
    assert ran(result) == ["c"]
    assert result["c"][1] == ("code changed: pipelines/m/steps.py: C.execute",)


def test_a_constant_built_by_a_call_counts_and_a_literal_does_not(proj):
    (proj.root / "pipelines/m/config.py").write_text(
        "import os\n\nSEED = int(os.environ.get('SEED', '1'))\nTABLE = dict(a=1)\n"
        "_STATE = {}\nRNG = _STATE.setdefault('rng', 1)\n"
    )
    make()
    edit(proj, "config", "dict(a=1)", "dict(a=2)")  # a pure builtin: only its readers
    edit(proj, "config", "'1'))", "'2'))")
    assert ran(make()) == []
    edit(proj, "config", "'rng', 1", "'rng', 2")  # a method call may change anything
    result = make()
    assert ran(result) == ["a", "b", "c"]
    assert result["c"][1] == (f"code changed: pipelines/m/config.py: RNG {AT_LOAD}",)


def test_a_subclass_a_base_registers_counts_whole(project):
    project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n',
        base="PLUGINS = []\n\n\nclass Plugin:\n    def __init_subclass__(cls):\n"
        "        PLUGINS.append(cls)\n",
        extra="from base import Plugin\n\n\nclass Loud(Plugin):\n    def text(self):\n"
        "        return 'loud-1'\n\n\nclass Quiet:\n    def text(self):\n        return 'q'\n",
        steps="from tipi import PipelineProcess\nfrom base import PLUGINS\n\n\n"
        "class A(PipelineProcess):\n    def execute(self):\n"
        "        self.outputs['out'].write_text(''.join(p().text() for p in PLUGINS))\n",
    )
    make()
    edit(project, "extra", "return 'q'", "return 'r'")  # no base registers Quiet
    assert ran(make()) == []
    edit(project, "extra", "loud-1", "loud-2")
    result = make()
    assert result["a"] == ("ran", (f"code changed: pipelines/m/extra.py: Loud.text {AT_LOAD}",))
    assert project.read("out/a.txt") == "loud-2"


COMPUTED = "(counted because loader.py imports a module by computed name)"


def test_a_computed_import_counts_every_module_of_the_pipeline_folder(proj):
    (proj.root / "pipelines/m/steps.py").write_text(STEPS_DYNAMIC)
    make()
    assert outputs(proj.root)["c.txt"] == "dyn-1"
    edit(proj, "dynmod_a", "dyn-1", "dyn-2")
    result = make()
    assert ran(result) == ["c"]  # only C reaches the computed import
    assert result["c"][1] == (f"code changed: pipelines/m/dynmod_a.py: VALUE {COMPUTED}",)
    edit(proj, "patch", "return 1", "return 2")  # C may load any module: all of it counts
    assert ran(make()) == ["c"]
    (proj.root / "pipelines/m/dynmod_a.py").unlink()
    (proj.root / "pipelines/m/dynmod_a").mkdir()  # a package now answers the same name
    (proj.root / "pipelines/m/dynmod_a/__init__.py").write_text('VALUE = "pkg"\n')
    result = make()
    assert ran(result) == ["c"]
    assert outputs(proj.root)["c.txt"] == "pkg"
    edit(proj, "dynmod_a/__init__", '"pkg"', '"pkg-2"')
    assert ran(make()) == ["c"]
    same_as_clean(proj.root)


def test_a_literal_import_by_name_counts_only_its_module(proj):
    (proj.root / "pipelines/m/steps.py").write_text(
        STEPS.replace(
            'write_text("c")', 'write_text(importlib.import_module("dynmod_a").VALUE)'
        ).replace("from tipi", "import importlib\nfrom tipi")
    )
    make()
    edit(proj, "patch", "return 1", "return 2")
    assert ran(make()) == []
    edit(proj, "dynmod_a", "dyn-1", "dyn-2")
    assert ran(make()) == ["c"]


@pytest.mark.slow
def test_the_cli_explains_why_import_time_code_counts(proj):
    """A real `tipi` process: `make -n --explain` and `status --explain` name the file, the
    unit and why it counts for a step that never imports it."""
    (proj.root / "pipelines/m/steps.py").write_text(STEPS_DYNAMIC)

    def tipi(*args: str) -> str:
        env = {**os.environ, "COLUMNS": "300", "TIPI_RUN_CACHE": "0"}
        done = subprocess.run(
            [sys.executable, "-m", "tipi", *args],
            cwd=proj.root,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    tipi("make")
    edit(proj, "patch", "patched-1", "patched-2")
    edit(proj, "dynmod_a", "dyn-1", "dyn-2")
    dry = tipi("make", "-n", "--explain")
    assert f"code changed: pipelines/m/patch.py: _describe {AT_LOAD}" in dry
    assert f"code changed: pipelines/m/dynmod_a.py: VALUE {COMPUTED}" in dry
    status = " ".join(tipi("status", "--explain").split())
    assert "pipelines/m/patch.py: _describe (imported by tipi at load" in status
    tipi("make")
    assert outputs(proj.root) == {"a.txt": "patched-2", "b.txt": "plugin-1", "c.txt": "dyn-2"}


def test_code_run_from_a_file_by_its_path_counts(project):
    project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n',
        steps="import runpy\nfrom tipi import PipelineProcess\n\n\nclass A(PipelineProcess):\n"
        "    def execute(self):\n        found = runpy.run_path('pipelines/m/plug.py')\n"
        "        self.outputs['out'].write_text(found['VALUE'])\n",
        plug="VALUE = '1'\n",
    )
    make()
    edit(project, "plug", "'1'", "'2'")
    result = make()
    why = "(counted because steps.py imports a module by computed name)"
    assert result["a"] == ("ran", (f"code changed: pipelines/m/plug.py: VALUE {why}",))
    assert project.read("out/a.txt") == "2"


def test_a_versioned_step_still_counts_what_tipi_runs_at_load(proj):
    """`version` stands for the class's own code, not for what a sibling does to it."""
    edit(
        proj,
        "steps",
        "class A(PipelineProcess):\n",
        'class A(PipelineProcess):\n    version = "1"\n',
    )
    make()
    edit(proj, "steps", "Net().describe())", 'Net().describe() + "")')  # own code: versioned
    assert "a" not in ran(make())
    edit(proj, "patch", "patched-1", "patched-2")
    result = make()
    assert result["a"] == ("ran", (f"code changed: pipelines/m/patch.py: _describe {AT_LOAD}",))
    assert outputs(proj.root)["a.txt"] == "patched-2"
    edit(proj, "steps", 'version = "1"', 'version = "2"')
    assert make()["a"] == ("ran", ("code changed: A: version",))


def test_a_call_in_a_functions_annotation_runs_at_import(proj):
    """Without `from __future__ import annotations`, a def's annotations are evaluated when
    the module runs: a call there patches at load like any other call."""
    (proj.root / "pipelines/m/patch.py").unlink()
    (proj.root / "pipelines/m/annotated.py").write_text(
        "import models\n\n\ndef _describe(self):\n    return 'annotated-1'\n\n\n"
        "def apply():\n    models.Net.describe = _describe\n\n\n"
        "def f(x: apply()) -> None:\n    return x\n"
    )
    make()
    assert outputs(proj.root)["a.txt"] == "annotated-1"
    edit(proj, "annotated", "annotated-1", "annotated-2")
    assert "a" in ran(make())
    assert outputs(proj.root)["a.txt"] == "annotated-2"
    # Postponed annotations are not evaluated: the same code runs nothing at import.
    (proj.root / "pipelines/m/annotated.py").unlink()
    (proj.root / "pipelines/m/lazy.py").write_text(
        "from __future__ import annotations\n\n\ndef g(x: print()) -> None:\n    return x\n"
    )
    make()
    edit(proj, "lazy", "return x", "return x or 1")
    assert ran(make()) == []


def test_a_project_decorator_named_like_a_pure_one_counts(proj):
    """`@dataclass` is only known to describe when it is the standard library's: one of the
    project's own (here registering the class) runs like any decorator."""
    (proj.root / "pipelines/m/patch.py").unlink()
    (proj.root / "pipelines/m/mydeco.py").write_text(
        "import models\n\n\ndef dataclass(cls):\n"
        "    models.Net.describe = lambda self: cls.X\n    return cls\n"
    )
    (proj.root / "pipelines/m/config.py").write_text(
        "from mydeco import dataclass\n\n\n@dataclass\nclass C:\n    X = 'c-1'\n"
    )
    make()
    assert outputs(proj.root)["a.txt"] == "c-1"
    edit(proj, "config", "c-1", "c-2")
    assert "a" in ran(make())
    assert outputs(proj.root)["a.txt"] == "c-2"
    same_as_clean(proj.root)


@pytest.mark.parametrize(
    "loader",
    [
        "from importlib import import_module as load_module\n\n\n"
        "def load(suffix):\n    return load_module('dynmod' + suffix).VALUE\n",
        "import importlib\n\nfetch = importlib.import_module\n\n\n"
        "def load(suffix):\n    return fetch('dynmod' + suffix).VALUE\n",
        "import sys\n\nimport dynmod_a  # noqa: F401\n\n\n"
        "def load(suffix):\n    return sys.modules['dynmod' + suffix].VALUE\n",
    ],
    ids=["aliased", "assigned", "sys.modules"],
)
def test_a_computed_import_under_another_name_still_counts(proj, loader):
    """`import_module` bound to another name, or a module looked up in sys.modules by a
    computed name: the module it loads cannot be read from the code either."""
    (proj.root / "pipelines/m/loader.py").write_text(loader)
    steps = STEPS.replace('write_text("c")', 'write_text(loader.load("_a"))')
    steps = steps.replace("from models", "import loader\nfrom models")
    (proj.root / "pipelines/m/steps.py").write_text(steps)
    make()
    assert outputs(proj.root)["c.txt"] == "dyn-1"
    (proj.root / "pipelines/m/dynmod_a.py").write_text('VALUE = "dyn-2"\n')
    assert "c" in ran(make())
    assert outputs(proj.root)["c.txt"] == "dyn-2"
