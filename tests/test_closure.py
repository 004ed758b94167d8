"""Code closures: what edits rerun which steps, across sibling modules, packages and factories."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tipi.engine import Engine
from tipi.identity.closure import CodeScanner
from tipi.identity.source import read_module

HELPERS = '''
"""Helpers shared by the steps."""
SCALE = 3
UNUSED = 5


def scale(text):
    return text * SCALE


def shout(text):
    return text.upper()


def unused_helper():
    return UNUSED
'''

MODELS = """
from .helpers import shout


class Net:
    def forward(self, text):
        return shout(text)

    def spare(self):
        return None
"""

STEPS = """
import os
from tipi import PipelineProcess
from . import helpers
from .models import Net


def log(name):
    with open(os.path.join(os.getcwd(), "runs.log"), "a") as f:
        f.write(name + "\\n")


class Scaled(PipelineProcess):
    def execute(self):
        log("scaled")
        self.outputs["out"].write_text(helpers.scale("ab"))


class Netted(PipelineProcess):
    def execute(self):
        log("netted")
        self.outputs["out"].write_text(Net().forward("ab"))


class Plain(PipelineProcess):
    def execute(self):
        log("plain")
        self.outputs["out"].write_text("plain")
"""

PIPELINE = """
[processes.scaled]
type = "Scaled"
outputs = { out = "out/scaled.txt" }

[processes.netted]
type = "Netted"
outputs = { out = "out/netted.txt" }

[processes.plain]
type = "Plain"
outputs = { out = "out/plain.txt" }

[processes.after]
type = "Plain"
inputs = { x = "out/netted.txt" }
outputs = { out = "out/after.txt" }
"""


@pytest.fixture
def proj(project):
    project.pipeline("m", PIPELINE, steps=STEPS, helpers=HELPERS, models=MODELS)
    return project


def make(*args: str, **options) -> dict[str, tuple[str, tuple[str, ...]]]:
    summary = Engine("m").make(*args, **options)
    return {r.name: (r.outcome, r.reasons) for r in summary.results}


def ran(project) -> list[str]:
    log = project.root / "runs.log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(names)


def edit(project, module: str, old: str, new: str) -> None:
    path = project.root / "pipelines/m" / f"{module}.py"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def built(project) -> None:
    make()
    ran(project)
    assert make()["plain"][0] == "skipped"
    assert ran(project) == []


def test_a_helper_edit_reruns_exactly_the_steps_that_reach_it(proj):
    built(proj)
    edit(proj, "helpers", "return text.upper()", "return text.upper() + '!'")
    result = make()
    assert ran(proj) == ["netted", "plain"]  # netted, then `after` (a Plain) whose input changed
    assert result["netted"] == ("ran", ("code changed: pipelines/m/helpers.py: shout",))
    assert result["scaled"][0] == "skipped"
    assert result["after"][0] == "ran"


def test_a_constant_reruns_its_users_and_unused_code_reruns_nothing(proj):
    built(proj)
    edit(proj, "helpers", "UNUSED = 5", "UNUSED = 6")
    edit(proj, "helpers", "return UNUSED", "return UNUSED * 2")
    assert set(make().values()) == {("skipped", ("up to date",))}
    assert ran(proj) == []
    edit(proj, "helpers", "SCALE = 3", "SCALE = 4")
    result = make()
    assert ran(proj) == ["scaled"]
    assert result["scaled"][1] == ("code changed: pipelines/m/helpers.py: SCALE",)


def test_docstrings_comments_and_formatting_never_count(proj):
    built(proj)
    edit(proj, "helpers", "def shout(text):", "# loud\ndef shout(text):  # see below\n")
    edit(
        proj,
        "helpers",
        "    return text.upper()",
        '    """Upper case."""\n    return (text.upper())',
    )
    edit(proj, "models", "class Net:", "class Net:\n    '''A net.'''\n")
    assert make()["netted"][0] == "skipped"
    assert ran(proj) == []


def test_a_method_edit_names_the_method_and_reruns_every_user_of_the_class(proj):
    built(proj)
    edit(proj, "models", "return None", "return 1")
    result = make()
    assert ran(proj) == ["netted"]  # the output is the same: `after` is cut off
    assert result["netted"][1] == ("code changed: pipelines/m/models.py: Net.spare",)
    assert result["after"][0] == "skipped"


def test_script_style_and_package_imports_are_followed(project):
    (project.root / "mylib").mkdir()
    (project.root / "mylib/__init__.py").write_text("")
    (project.root / "mylib/text.py").write_text("def double(s):\n    return s * 2\n")
    project.pipeline(
        "m",
        """
        [processes.one]
        type = "One"
        outputs = { out = "out/one.txt" }
        """,
        steps="""
        from tipi import PipelineProcess
        import mylib.text
        from mylib import text as t


        class One(PipelineProcess):
            def execute(self):
                self.outputs["out"].write_text(mylib.text.double("x") + t.double("y"))
        """,
    )
    make()
    assert make()["one"][0] == "skipped"
    (project.root / "mylib/text.py").write_text("def double(s):\n    return s * 3\n")
    result = make()
    assert result["one"] == ("ran", ("code changed: mylib/text.py: double",))
    assert project.read("out/one.txt") == "xxxyyy"


def test_unresolvable_references_count_their_whole_module(tmp_path):
    folder = tmp_path / "pipelines/p"
    folder.mkdir(parents=True)
    (folder / "a.py").write_text(
        "def f():\n    return getattr(__import__('x'), 'y')\n\ndef g():\n    return 1\n"
    )
    (folder / "b.py").write_text("from .a import *\n\ndef h():\n    return f()\n")
    module = read_module((folder / "a.py").read_text())
    assert module.units["f"].dynamic and not module.units["g"].dynamic
    scanner = CodeScanner(tmp_path, folder)
    walk_units = scanner.closure_of("b:h").units
    via = " (via pipelines/p/b.py: from .a import *)"  # a star-imported file counts whole
    assert {f"pipelines/p/a.py: f{via}", f"pipelines/p/a.py: g{via}", "pipelines/p/b.py: h"} <= set(
        walk_units
    )


def test_a_reason_names_the_star_import_that_reached_a_unit(project, cli):
    """pytorch-cifar's models/__init__.py star-imports every architecture: an edit to one
    no step uses reruns the step (the star import runs it), and the reason says why."""
    folder = project.pipeline(
        "c",
        """
        [processes.fit]
        type = "Fit"
        outputs = { out = "out/fit.txt" }
        """,
        steps="""
        from pathlib import Path

        from tipi import PipelineProcess
        from models import ResNet


        class Fit(PipelineProcess):
            def execute(self):
                Path(self.outputs["out"]).write_text(ResNet().name)
        """,
    )
    (folder / "models").mkdir()
    (folder / "models/__init__.py").write_text("from .vgg import *\nfrom .resnet import *\n")
    (folder / "models/vgg.py").write_text(
        "class VGG:\n    def __init__(self):\n        self.name = 'vgg'\n"
    )
    (folder / "models/resnet.py").write_text("class ResNet:\n    name = 'resnet'\n")
    assert cli("make", "-p", "c").exit_code == 0
    (folder / "models/vgg.py").write_text(
        "class VGG:\n    def __init__(self):\n        self.name = 'VGG'\n"
    )
    result = cli("make", "-p", "c")
    assert (
        "code changed: pipelines/c/models/vgg.py: VGG.__init__ "
        "(via pipelines/c/models/__init__.py: from .vgg import *)"
    ) in result.stderr


def test_a_factory_named_by_a_network_counts_for_the_steps_that_use_it(project):
    project.pipeline(
        "m",
        """
        [permanences.device]
        type = "Device"

        [permanences.net]
        type = "Network"
        params = { model = "nets:make_net" }

        [processes.count]
        type = "Count"
        outputs = { out = "out/count.txt" }
        """,
        steps="""
        from tipi import PipelineProcess


        class Count(PipelineProcess):
            def execute(self):
                model = self.controller.get_permanence("net").model
                n = sum(p.numel() for p in model.parameters())
                self.outputs["out"].write_text(str(n))
        """,
        nets="""
        import torch


        def make_net():
            return torch.nn.Linear(2, 3)
        """,
    )
    make()
    assert make()["count"][0] == "skipped"
    edit(project, "nets", "Linear(2, 3)", "Linear(2, 4)")
    result = make()
    assert result["count"] == (
        "ran",
        ("permanence 'net' config changed: code changed: pipelines/m/nets.py: make_net",),
    )
    assert project.read("out/count.txt") == "12"


def test_the_no_op_shortcut_sees_an_edit_to_any_tracked_file(proj):
    built(proj)
    assert make()["plain"] == ("skipped", ("up to date",))  # through the clean record
    edit(proj, "helpers", "SCALE = 3", "SCALE = 7")
    assert make()["scaled"][0] == "ran"


def test_a_permanence_used_only_through_another_is_recorded_for_every_step(project):
    """`outer`'s initialize() asks for `inner`; the second step uses `outer` once it is
    already initialized, so only the recorded dependency can tell it also uses `inner`."""
    project.pipeline(
        "m",
        """
        [permanences.inner]
        type = "Inner"
        params = { value = 1 }

        [permanences.outer]
        type = "Outer"

        [processes.first]
        type = "Use"
        outputs = { out = "out/first.txt" }

        [processes.second]
        type = "Use"
        outputs = { out = "out/second.txt" }
        """,
        steps="""
        from tipi import Permanence, PipelineProcess


        class Inner(Permanence):
            def __init__(self, value: int = 0):
                self.value = value

            def cleanup(self):
                pass


        class Outer(Permanence):
            def initialize(self):
                self.value = self.controller.get_permanence("inner").value

            def cleanup(self):
                pass


        class Use(PipelineProcess):
            def execute(self):
                value = self.controller.get_permanence("outer").value
                self.outputs["out"].write_text(str(value))
        """,
    )
    make(run_cache=False)
    result = Engine("m", overrides=["inner.value=2"]).make(run_cache=False)
    outcomes = {r.name: r.outcome for r in result.results}
    assert outcomes == {"first": "ran", "second": "ran"}
    assert project.read("out/second.txt") == "2"


def test_two_steps_of_one_class_keep_their_own_bytes_in_the_run_cache(project):
    project.pipeline(
        "m",
        """
        [processes.json]
        type = "Table"
        outputs = { table = "out/table.json" }

        [processes.csv]
        type = "Table"
        outputs = { table = "out/table.csv" }

        [processes.other]
        type = "Table"
        outputs = { rows = "out/rows.csv" }
        """,
        steps="""
        from tipi import PipelineProcess


        class Table(PipelineProcess):
            def execute(self):
                for path in self.outputs.values():
                    path.write_text(path.suffix + " table")
        """,
    )
    Engine("m").make(run_cache=True)
    for name in ("table.json", "table.csv", "rows.csv"):
        (project.root / "out" / name).unlink()
    summary = Engine("m").make(run_cache=True)
    assert {r.outcome for r in summary.results} == {"restored"}
    assert project.read("out/table.json") == ".json table"
    assert project.read("out/table.csv") == ".csv table"
    assert project.read("out/rows.csv") == ".csv table"


def test_a_step_runs_with_the_params_it_was_planned_with(project):
    """`first` rewrites pipeline.toml while the make runs: `second` still runs with the
    params its fingerprint was computed from, and the next make sees the edit."""
    _params_edited_mid_make(project, jobs=None)


@pytest.mark.slow
def test_a_worker_runs_with_the_params_it_was_planned_with(project):
    _params_edited_mid_make(project, jobs=2)


def _params_edited_mid_make(project, jobs):
    project.pipeline(
        "m",
        """
        [processes.first]
        type = "Edit"
        outputs = { out = "out/first.txt" }

        [processes.second]
        type = "Echo"
        after = ["first"]
        params = { value = 1 }
        outputs = { out = "out/second.txt" }
        """,
        steps="""
        from pathlib import Path
        from tipi import PipelineProcess


        class Edit(PipelineProcess):
            def execute(self):
                toml = Path("pipelines/m/pipeline.toml")
                toml.write_text(toml.read_text().replace("value = 1", "value = 2"))
                self.outputs["out"].write_text("edited")


        class Echo(PipelineProcess):
            def __init__(self, controller, force: bool = False, value: int = 0):
                super().__init__(controller, force)
                self.value = value

            def execute(self):
                self.outputs["out"].write_text(str(self.value))
        """,
    )
    Engine("m").make(jobs=jobs)
    assert project.read("out/second.txt") == "1"
    result = {r.name: r for r in Engine("m").make(jobs=jobs).results}
    assert result["second"].outcome == "ran"
    assert result["second"].reasons == ("params changed: value 1 → 2",)
    assert project.read("out/second.txt") == "2"


def test_rehash_rereads_files_restored_with_their_old_timestamps(project):
    project.pipeline(
        "m",
        """
        [processes.copy]
        type = "Copy"
        inputs = { src = "src.txt" }
        outputs = { out = "out/copy.txt" }
        """,
        steps="""
        from tipi import PipelineProcess


        class Copy(PipelineProcess):
            def execute(self):
                self.outputs["out"].write_text(self.inputs["src"].read_text())
        """,
    )
    source = project.root / "src.txt"
    source.write_text("one")
    past = time.time() - 60
    os.utime(source, (past, past))
    make()
    stat = source.stat()
    with open(source, "r+") as f:  # same size, same inode, then the old mtime back
        f.write("two")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert make()["copy"][0] == "skipped"  # no timestamp says it changed
    assert make(rehash=True)["copy"] == ("ran", ("input src.txt changed",))
    assert project.read("out/copy.txt") == "two"


def test_a_rewrite_within_a_coarse_timestamp_is_seen(tmp_path):
    """On a file system with whole-second mtimes, a file rewritten in place within the
    same second keeps (size, mtime, inode): such a file must not be trusted by signature."""
    from tipi.identity.hashing import StatCache, is_racy

    path = tmp_path / "f.txt"
    path.write_text("one")
    second = (time.time_ns() // 1_000_000_000) * 1_000_000_000
    os.utime(path, ns=(second, second))
    cache = StatCache()
    first = cache.hash_path(path)
    assert str(path) not in cache.entries  # whole-second mtime, less than 2 s old: racy
    with open(path, "r+") as f:
        f.write("two")
    os.utime(path, ns=(second, second))
    assert StatCache(dict(cache.entries)).hash_path(path) != first
    assert is_racy(second, second + 1_500_000_000)
    assert not is_racy(second + 1, second + 1_500_000_000)  # fine timestamps: 0.1 s
    assert not is_racy(second, second + 2_500_000_000)


def test_the_code_table_is_only_read_to_explain(proj):
    built(proj)
    table = Path(proj.root / ".tipi_cache/code.msgpack")
    assert table.exists()
    table.write_bytes(b"garbage")
    edit(proj, "helpers", "SCALE = 3", "SCALE = 5")
    result = make()
    assert result["scaled"][0] == "ran"  # explained from this make's own plan


def _fake_distribution(site: Path, version: str) -> None:
    for old in site.glob("fakepkg-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"fakepkg-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakepkg\n")
    (site / "fakepkg").mkdir(exist_ok=True)
    (site / "fakepkg/__init__.py").write_text("VALUE = 1\n")


@pytest.mark.slow
def test_a_changed_environment_is_shown_and_reruns_only_when_asked(project, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    _fake_distribution(site, "1.0")
    toml = """
    {meta}
    [processes.use]
    type = "Use"
    outputs = {{ out = "out/use.txt" }}
    """
    project.pipeline(
        "m",
        toml.format(meta=""),
        steps="""
        from tipi import PipelineProcess
        import fakepkg


        class Use(PipelineProcess):
            def execute(self):
                self.outputs["out"].write_text(str(fakepkg.VALUE))
        """,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}

    def tipi(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tipi", *args]
        return subprocess.run(command, cwd=project.root, env=env, capture_output=True, text=True)

    assert tipi("make").returncode == 0
    _fake_distribution(site, "2.0")
    status = tipi("status", "--explain")
    assert "environment changed: fakepkg 1.0 → 2.0" in status.stdout, status
    assert "up-to-date" in status.stdout
    made = tipi("make", "-v")
    assert "ran" not in made.stderr.split("step")[0], made.stderr
    assert "skipped" in made.stderr

    project.pipeline("m", toml.format(meta="[pipeline]\nrerun_on_env = true\n"))
    _fake_distribution(site, "3.0")
    made = tipi("make", "--explain")
    assert made.returncode == 0, made.stderr
    assert "environment changed: fakepkg 1.0 → 3.0" in made.stderr  # made under 1.0
    assert "✔ use ran" in made.stderr


# Each case: sibling files (steps.py holds class A), then an edit; `a` must rerun (or not).
RUNS_A = """
from tipi import PipelineProcess
{imports}


class A(PipelineProcess):
    def execute(self):
        self.outputs["out"].write_text(str({value}))
"""

ATTACKS = {
    "a module imported for its side effects (a registry)": (
        {
            "steps": RUNS_A.format(
                imports="import models\nfrom registry import REGISTRY", value='REGISTRY["f"]()'
            ),
            "registry": "REGISTRY = {}\n\n\ndef register(fn):\n    REGISTRY[fn.__name__] = fn\n    return fn\n",
            "models": "from registry import register\n\n\n@register\ndef f():\n    return 1\n",
        },
        ("models", "return 1", "return 2"),
        True,
    ),
    "a module that changes a config on import": (
        {
            "steps": RUNS_A.format(
                imports="import tweak\nfrom helpers import CONFIG", value='CONFIG["lr"]'
            ),
            "helpers": "CONFIG = {}\n",
            "tweak": "from helpers import CONFIG\n\nCONFIG['lr'] = 0.1\n",
        },
        ("tweak", "0.1", "0.2"),
        True,
    ),
    "a name re-bound after its import": (
        {
            "steps": RUNS_A.format(
                imports="import functools\nfrom helpers import f\n\nf = functools.lru_cache(f)",
                value="f()",
            ),
            "helpers": "def f():\n    return 1\n",
        },
        ("helpers", "return 1", "return 2"),
        True,
    ),
    "a list extended after its import": (
        {
            "steps": RUNS_A.format(
                imports="from helpers import LAYERS\n\nLAYERS += [3]", value="LAYERS"
            ),
            "helpers": "LAYERS = [1]\n",
        },
        ("helpers", "[1]", "[2]"),
        True,
    ),
    "an alternative import": (
        {
            "steps": RUNS_A.format(
                imports="try:\n    from fast import f\nexcept ImportError:\n    from slow import f",
                value="f()",
            ),
            "fast": "def f():\n    return 1\n",
            "slow": "def f():\n    return 0\n",
        },
        ("fast", "return 1", "return 2"),
        True,
    ),
    "the else of a main guard": (
        {
            "steps": RUNS_A.format(imports="from helpers import CFG", value="CFG"),
            "helpers": "CFG = {}\nif __name__ == '__main__':\n    print(1)\nelse:\n    CFG['x'] = 1\n",
        },
        ("helpers", "CFG['x'] = 1", "CFG['x'] = 2"),
        True,
    ),
    "an inherited version attribute": (
        {
            "steps": "from tipi import PipelineProcess\n\n\nclass Base(PipelineProcess):\n    version = '1'\n\n\n"
            "class A(Base):\n    def execute(self):\n        self.outputs['out'].write_text('1')\n",
        },
        ("steps", "write_text('1')", "write_text('2')"),
        True,
    ),
    "an import in a class body": (
        {
            "steps": "from tipi import PipelineProcess\n\n\nclass A(PipelineProcess):\n    from helpers import f as g\n\n"
            "    def execute(self):\n        self.outputs['out'].write_text(str(self.g()))\n",
            "helpers": "def f(*args):\n    return 1\n",
        },
        ("helpers", "return 1", "return 2"),
        True,
    ),
    "a method named eval is not dynamic": (
        {
            "steps": RUNS_A.format(imports="from helpers import M, unused", value="M().eval()"),
            "helpers": "class M:\n    def eval(self):\n        return 1\n\n\ndef unused():\n    return 5\n",
        },
        ("helpers", "return 5", "return 6"),
        False,
    ),
    "a latin-1 source file": (
        {
            "steps": RUNS_A.format(imports="from helpers import f", value="f()"),
            "helpers": "# -*- coding: latin-1 -*-\ndef f():\n    return 'caf\xe9' + '1'\n",
        },
        ("helpers", "'1'", "'2'"),
        True,
    ),
}


@pytest.mark.parametrize("case", list(ATTACKS))
def test_code_reached_in_every_way_a_researcher_writes_it_is_tracked(project, case):
    modules, (module, old, new), reruns = ATTACKS[case]
    folder = project.root / "pipelines/m"
    folder.mkdir(parents=True)
    (folder / "pipeline.toml").write_text(
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n'
    )
    for name, text in modules.items():
        encoding = "latin-1" if "latin-1" in text else "utf-8"
        (folder / f"{name}.py").write_text(text, encoding=encoding)
    make(run_cache=False)
    assert make(run_cache=False)["a"][0] == "skipped"
    path = folder / f"{module}.py"
    encoding = "latin-1" if "latin-1" in path.read_text(encoding="latin-1") else "utf-8"
    text = path.read_text(encoding=encoding)
    assert old in text
    path.write_text(text.replace(old, new), encoding=encoding)
    outcome = make(run_cache=False)["a"][0]
    assert outcome == ("ran" if reruns else "skipped"), case


def test_a_package_beside_pipeline_toml_wins_over_a_module_of_its_name(project):
    folder = project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n',
        steps=RUNS_A.format(imports="from utils import f", value="f()"),
    )
    (project.root / "utils.py").write_text("def f():\n    return 1\n")
    make(run_cache=False)
    assert project.read("out/a.txt") == "1"
    (folder / "utils").mkdir()  # now `from utils import f` finds this package first
    (folder / "utils/__init__.py").write_text("def f():\n    return 5\n")
    assert make(run_cache=False)["a"][0] == "ran"
    assert project.read("out/a.txt") == "5"
    (folder / "utils/__init__.py").write_text("def f():\n    return 6\n")
    assert make(run_cache=False)["a"][0] == "ran"
    assert project.read("out/a.txt") == "6"


def test_code_named_by_a_param_is_tracked(project):
    folder = project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\nparams = { loss = "losses:focal" }\n'
        'outputs = { out = "out/a.txt" }\n',
        steps="""
        import importlib
        from tipi import PipelineProcess


        class A(PipelineProcess):
            def __init__(self, controller, force: bool = False, loss: str = ""):
                super().__init__(controller, force)
                self.loss = loss

            def execute(self):
                module, _, name = self.loss.partition(":")
                fn = getattr(importlib.import_module(module), name)
                self.outputs["out"].write_text(str(fn()))
        """,
        losses="def focal():\n    return 1\n",
    )
    make(run_cache=False)
    (folder / "losses.py").write_text("def focal():\n    return 2\n")
    result = make(run_cache=False)
    assert result["a"] == ("ran", ("code changed: pipelines/m/losses.py: focal",))
    assert project.read("out/a.txt") == "2"


def test_pathological_but_legal_code_is_read_without_recursion_errors(tmp_path):
    folder = tmp_path / "pipelines/p"
    folder.mkdir(parents=True)
    chain = (
        "\n".join(f"def f{i}():\n    return f{i + 1}()\n" for i in range(1500))
        + "\ndef f1500():\n    return 1\n"
    )
    branches = "def g(x):\n    if x == 0:\n        return 0\n" + "".join(
        f"    elif x == {i}:\n        return {i}\n" for i in range(1, 1000)
    )
    total = "TOTAL = " + " + ".join("1" for _ in range(500)) + "\n"
    (folder / "big.py").write_text(chain + branches + total)
    scanner = CodeScanner(tmp_path, folder)
    units = scanner.closure_of("big:f0").units
    assert len([u for u in units if u.startswith("pipelines/p/big.py: f")]) == 1501
    assert "pipelines/p/big.py: TOTAL" in scanner.closure_of("big:TOTAL").units
    assert "pipelines/p/big.py: g" in scanner.closure_of("big:g").units


def test_a_helper_edited_while_its_step_runs_fails_that_step(project):
    """The step imports the helper lazily, after the edit: it ran new code under the old
    fingerprint, so its result is not kept."""
    folder = project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n',
        steps="""
        from pathlib import Path
        from tipi import PipelineProcess


        class A(PipelineProcess):
            def execute(self):
                helper = Path(__file__).with_name("helpers.py")
                helper.write_text(helper.read_text().replace("return 1", "return 2"))
                from helpers import f
                self.outputs["out"].write_text(str(f()))

            def lazy(self):
                import helpers
                return helpers.f
        """,
        helpers="def f():\n    return 1\n",
    )
    past = time.time() - 60
    for path in folder.iterdir():
        os.utime(path, (past, past))
    from tipi.errors import ProcessFailure

    with pytest.raises(ProcessFailure, match="helpers.py changed while the step ran"):
        make(run_cache=False)
    assert not (project.root / "out/a.txt").exists()


def test_a_config_object_with_a_raising_getattr_is_no_problem(project):
    project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n',
        steps=RUNS_A.format(imports="from config import CFG", value='CFG["lr"]'),
        config="class AttrDict(dict):\n    def __getattr__(self, k):\n        return self[k]\n\n\n"
        "CFG = AttrDict(lr=0.1)\n",
    )
    assert make()["a"][0] == "ran"
    assert project.read("out/a.txt") == "0.1"


def test_a_syntax_error_in_a_helper_names_the_helper(project, cli):
    project.pipeline(
        "m",
        '[processes.a]\ntype = "A"\noutputs = { out = "out/a.txt" }\n',
        steps=RUNS_A.format(imports="from utils import f", value="f()"),
        utils="X = 1\n\ndef f() return 1\n",
    )
    result = cli("make")
    assert result.exit_code == 2
    assert "pipelines/m/utils.py:3: syntax error" in result.stderr


IMPORT_TIME = """
import os
from dataclasses import dataclass, field
import functools

EPOCHS = int(os.environ.get("EPOCHS", "3"))
SCALE = 3
MEAN = torch.tensor([0.5])
COUNT = 1
COUNT += 1


def plain():
    return side_effect()


@register
def registered():
    return 1


@functools.lru_cache(maxsize=None)
def cached():
    return 1


@dataclass
class Config:
    items: list = field(default_factory=list)

    def method(self):
        return compute()


class Header:
    value = compute()

    def method(self):
        return 1


class Meta(Base, metaclass=Registering):
    pass


class Hook:
    def __init_subclass__(cls):
        PLUGINS.append(cls)


models.Net.describe = plain


def computed(name):
    return importlib.import_module("dyn" + name)


def literal():
    return importlib.import_module("dyn_a")
"""


def test_only_code_that_may_change_more_than_its_name_runs_eagerly_at_import():
    module = read_module(IMPORT_TIME)
    assert module.eager == ["MEAN", "COUNT", "registered", "Header", "<module>"]
    assert module.headers == {"Header"}  # a call in a class attribute: the header only
    assert module.registrars == {"Meta", "Hook"}
    assert module.bases["Meta"] == (("Base",),)
    assert [n for n, u in module.units.items() if u.computed] == ["computed"]


def test_a_step_closure_holds_import_time_code_under_its_own_key(tmp_path):
    folder = tmp_path / "pipelines/p"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text("def step():\n    return 1\n")
    (folder / "patch.py").write_text(
        "import steps\n\n\ndef _f():\n    return 2\n\n\nsteps.step = _f\n\n\ndef idle():\n"
        "    return 3\n"
    )
    (folder / "quiet.py").write_text("X = 1\n\n\ndef g():\n    return X\n")
    scanner = CodeScanner(tmp_path, folder)
    step = scanner.closure_of("steps:step", step=True)
    why = "(imported by tipi at load: module-level code)"
    assert set(step.units) == {
        "pipelines/p/steps.py: step",
        f"pipelines/p/patch.py: <module> {why}",
        f"pipelines/p/patch.py: _f {why}",
    }
    # a running step depends on the files code was taken from; the plan on every file read
    assert str((folder / "patch.py").resolve()) in step.files
    assert str((folder / "quiet.py").resolve()) in step.read - step.files
    assert set(scanner.closure_of("steps:step").units) == {"pipelines/p/steps.py: step"}


def test_a_name_assigned_twice_keeps_its_computed_import():
    """Two statements binding one name are one unit: a computed import in either marks it."""
    first = read_module('import importlib\nmod = importlib.import_module("dyn" + X)\nmod += 1\n')
    second = read_module('import importlib\nmod = None\nmod = importlib.import_module("d" + X)\n')
    assert first.units["mod"].computed and second.units["mod"].computed
