"""The code memo (identity/memo.py): a closure reused from it equals the one computed from
scratch, over a table of edits; a damaged memo is reported and rebuilt."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tipi.engine import Engine
from tipi.identity import closure
from tipi.identity.closure import CodeScanner
from tipi.identity.memo import CodeMemo, pack_module, unpack_module
from tipi.identity.source import read_module
from tipi.report import ListReporter
from tipi.state.codetable import read_code_memo, write_code_memo

HELPERS = """
SCALE = 3


def scale(text):
    return text * SCALE


def shout(text):
    return text.upper()


def unused_helper():
    return 5
"""

MODELS = """
from .helpers import shout


class Net:
    def forward(self, text):
        return shout(text)
"""

STEPS = """
import utils
import pkg
from . import helpers
from .models import Net


class Scaled:
    def execute(self):
        return helpers.scale("ab")


class Netted:
    def execute(self):
        return Net().forward("ab")


class Plain:
    def execute(self):
        return "plain"


class Util:
    def execute(self):
        return utils.tool() + pkg.sub.deep()
"""

ROOT_UTILS = "def tool():\n    return 1\n"
STARTS = ["steps:Scaled", "steps:Netted", "steps:Plain", "steps:Util", "alone:Alone"]


def replace(old: str, new: str, name: str = "helpers.py"):
    def apply(root: Path, folder: Path) -> None:
        path = folder / name
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))

    return apply


def write(relative: str, text: str):
    def apply(root: Path, folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return apply


def delete(relative: str):
    def apply(root: Path, folder: Path) -> None:
        (folder / relative).unlink()

    return apply


# (what, edit, every closure reused): applied in turn, each on what the ones before left.
EDITS: list[tuple[str, Any, bool]] = [
    ("nothing", lambda root, folder: None, True),
    ("a comment in the helper", replace("SCALE = 3\n", "SCALE = 3  # three\n"), True),
    ("a docstring-free reformat", replace("return text * SCALE", "return (text *  SCALE)"), True),
    ("a function the class reaches", replace("text.upper()", "text.upper() + '!'"), False),
    ("a function no class reaches", replace("return 5", "return 6"), False),
    ("a rename", replace("shout", "yell", "models.py"), False),
    ("the renamed definition", replace("def shout", "def yell"), False),
    ("a module shadowing an import", write("utils.py", "def tool():\n    return 2\n"), False),
    (
        "a submodule the package did not bind",
        write("../../pkg/sub.py", "def deep():\n    return 3\n"),
        False,
    ),
    (
        "a sibling run at load",
        write("extra.py", "from . import helpers\nhelpers.SCALE = 4\n"),
        False,
    ),
    ("a deleted module", delete("models.py"), False),
    ("the shadowing module deleted", delete("utils.py"), False),
    ("nothing again", lambda root, folder: None, True),
]


class Stored:
    """The memo file, kept in memory (packed and unpacked as on disk)."""

    def __init__(self) -> None:
        self.raw: bytes | None = None

    def memo(self) -> CodeMemo:
        def read() -> tuple[dict[str, Any] | None, bool]:
            if self.raw is None:
                return None, False
            return msgpack.unpackb(self.raw, raw=False, strict_map_key=False), False

        def write(doc: dict[str, Any]) -> None:
            self.raw = msgpack.packb(doc, use_bin_type=True)

        return CodeMemo(read, write)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "pipelines" / "m"
    folder.mkdir(parents=True)
    for name, text in (("helpers", HELPERS), ("models", MODELS), ("steps", STEPS)):
        (folder / f"{name}.py").write_text(textwrap.dedent(text).lstrip())
    (folder / "alone.py").write_text("class Alone:\n    def execute(self):\n        return 1\n")
    (tmp_path / "utils.py").write_text(ROOT_UTILS)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("VERSION = 1\n")
    return tmp_path, folder


def test_a_closure_from_the_memo_equals_the_one_from_scratch_over_edits(tree):
    root, folder = tree
    stored = Stored()
    first = CodeScanner(root, folder, stored.memo())
    for start in STARTS:
        first.closure_of(start, step=True)
    first.memo.save()  # type: ignore[union-attr]
    for what, apply, all_reused in EDITS:
        apply(root, folder)
        memo = stored.memo()
        remembered = CodeScanner(root, folder, memo)
        scratch = CodeScanner(root, folder)
        alone = CodeScanner(root, folder)
        alone.shared = None  # every walk on its own: what the shared lookups must equal
        reused = []
        for start in STARTS:
            got = remembered.closure_of(start, step=True)
            want = scratch.closure_of(start, step=True)
            assert want == alone.closure_of(start, step=True), (what, start)
            assert got.fingerprint == want.fingerprint, (what, start)
            assert got.files == want.files, (what, start)
            assert got.imports == want.imports, (what, start)
            assert want.absent <= got.absent | want.absent, (what, start)
            reused.append(got.reused)
        assert all(reused) == all_reused, (what, reused)
        memo.save()


def test_a_class_keeps_its_closure_when_a_module_it_does_not_read_changes(tree):
    root, folder = tree
    stored = Stored()
    scanner = CodeScanner(root, folder, stored.memo())
    for start in STARTS:
        scanner.closure_of(start)
    scanner.memo.save()  # type: ignore[union-attr]
    replace("return 5", "return 6")(root, folder)  # helpers.py: alone.py does not import it
    again = CodeScanner(root, folder, stored.memo())
    assert again.closure_of("alone:Alone").reused
    assert not again.closure_of("steps:Scaled").reused


def test_a_damaged_memo_is_reported_and_rebuilt(tmp_path):
    path = tmp_path / "code_memo.msgpack"
    path.write_bytes(b"\x93not msgpack at all")
    warnings: list[str] = []
    doc, broken = read_code_memo(path, warnings.append)
    assert doc is None and broken and len(warnings) == 1
    memo = CodeMemo(
        lambda: read_code_memo(path, warnings.append), lambda m: write_code_memo(path, m)
    )
    memo.save()  # nothing new, but the damaged file is rewritten
    assert read_code_memo(path, warnings.append) == (
        {"rules": memo_rules(), "meanings": {}, "groups": [], "closures": {}, **EMPTY},
        False,
    )


EMPTY = {"sources": {}, "statements": {}}


def memo_rules() -> str:
    from tipi.identity.memo import rules

    return rules()


def test_a_make_after_a_param_change_reuses_every_closure(project):
    project.pipeline(
        "m",
        """
        [processes.a]
        type = "Scaled"
        params = { n = 1 }
        outputs = { out = "out/a.txt" }
        """,
        steps="""
        from tipi import PipelineProcess
        from .helpers import scale


        class Scaled(PipelineProcess):
            def __init__(self, controller, force: bool = False, n: int = 0) -> None:
                super().__init__(controller, force)
                self.n = n

            def execute(self):
                self.outputs["out"].write_text(scale("ab") * self.n)
        """,
        helpers=HELPERS,
    )
    Engine("m").make()
    memo_file = project.root / ".tipi_cache" / "code_memo.msgpack"
    assert memo_file.exists()
    before = Engine("m").load(save=False).steps["a"].code
    engine = Engine("m", overrides=["a.n=2"])
    plan = engine.load(save=False)
    assert plan.steps["a"].code == before
    assert engine.planner.code_units == {}  # reused: nothing walked again


def test_a_damaged_memo_file_warns_once_and_the_make_is_right(project):
    project.pipeline(
        "m",
        """
        [processes.a]
        type = "Scaled"
        outputs = { out = "out/a.txt" }
        """,
        steps="""
        from tipi import PipelineProcess
        from .helpers import scale


        class Scaled(PipelineProcess):
            def execute(self):
                self.outputs["out"].write_text(scale("ab"))
        """,
        helpers=HELPERS,
    )
    Engine("m").make()
    memo_file = project.root / ".tipi_cache" / "code_memo.msgpack"
    memo_file.write_bytes(b"\xc1 damaged")
    helpers = project.root / "pipelines/m/helpers.py"
    helpers.write_text(helpers.read_text().replace("SCALE = 3", "SCALE = 2"))
    reporter = ListReporter()
    summary = Engine("m", reporter=reporter).make()
    assert [r.outcome for r in summary.results] == ["ran"]
    assert (project.root / "out/a.txt").read_text() == "abab"
    warnings = [m for kind, m in reporter.events if kind == "warning"]
    assert sum("code_memo" in w for w in warnings) == 1, warnings
    doc, broken = read_code_memo(memo_file, warnings.append)
    assert doc is not None and not broken and doc["closures"]


RICH = '''
"""A module with every kind of unit."""
import importlib
import os.path as osp
from . import helpers
from .models import *

try:
    from fast import f
except ImportError:
    from slow import f

X = 1
X += 1
A = B = osp.join("a", "b")


class Meta(type):
    pass


class Base(metaclass=Meta):
    size = len("abc")

    def __init_subclass__(cls):
        pass

    def go(self):
        from .helpers import scale
        return getattr(self, "x"), scale("a"), "losses:focal"


@helpers.register
def registered():
    return importlib.import_module("dyn" + X)


helpers.SCALE = 5

if __name__ == "__main__":
    print("script")
else:
    Y = 2
'''


@pytest.mark.parametrize("text", [HELPERS, MODELS, STEPS, RICH], ids=["h", "m", "s", "rich"])
def test_a_module_read_back_from_the_memo_equals_the_parsed_one(text):
    module = read_module(textwrap.dedent(text))
    assert unpack_module(pack_module(module)) == module


def test_an_unchanged_module_is_read_from_the_memo_not_parsed(tree, monkeypatch):
    root, folder = tree
    stored = Stored()
    scanner = CodeScanner(root, folder, stored.memo())
    want = scanner.closure_of("steps:Util").units
    scanner.memo.save()  # type: ignore[union-attr]
    (folder / "steps.py").write_text((folder / "steps.py").read_text() + "\n\nZ = 1\n")
    parsed: list[str] = []
    real = closure.read_tree
    monkeypatch.setattr(closure, "read_tree", lambda t, *a: parsed.append("x") or real(t, *a))
    again = CodeScanner(root, folder, stored.memo())
    got = again.closure_of("steps:Util")
    assert not got.reused and got.units == want
    assert len(parsed) == 1  # steps.py only: helpers, models, utils, pkg from the memo
