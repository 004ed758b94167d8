"""Function units kept by their text (identity/statements.py) give what reading the module
afresh gives: the same ModuleSource for any mix of functions and module scopes, a memo shared
between modules whose scopes differ, and a function edited read again."""

from __future__ import annotations

import ast
import itertools

import pytest

from tipi.identity.memo import CodeMemo
from tipi.identity.source import read_tree
from tipi.identity.statements import StatementMemo

HEADERS = [
    "",
    "from __future__ import annotations\n",
    "from somewhere import *\n",
    "def lru_cache(f):\n    REGISTRY.append(f)\n    return f\n",  # shadows a pure decorator
    "from importlib import import_module as load\n",
]
FUNCTIONS = [
    "def f(x):\n    return x + 1\n",
    "def f(x):  # a comment\n    return x + 1\n",
    '@lru_cache\ndef g(x: "int" = int("3")) -> int:\n    """Doc."""\n    return g(x - 1)\n',
    "@register\n@lru_cache(maxsize=2)\ndef h():\n    from .helpers import k\n    return k\n",
    "async def a():\n    return await load('m' + name)\n",
    "def d(name):\n    return getattr(mod, name); x = 1\n",
    "def f(x):\n    return x + 2\n",  # f again: two statements, one unit
]


def _fresh(text: str):
    return read_tree(ast.parse(text))


def _with(text: str, memo: CodeMemo):
    return read_tree(ast.parse(text), StatementMemo(text, memo))


@pytest.mark.parametrize("header", HEADERS)
def test_same_module_source_from_the_memo(header: str) -> None:
    memo = CodeMemo()
    for combo in itertools.combinations(FUNCTIONS, 3):
        text = header + "\n".join(combo) + "\nx = f(1)\n"
        expected = _fresh(text)
        assert _with(text, memo) == expected  # computed (or from another header's keys)
        assert _with(text, memo) == expected  # from the memo


def test_a_memo_shared_by_modules_of_different_scopes() -> None:
    memo = CodeMemo()
    for header, function in itertools.product(HEADERS, FUNCTIONS):
        text = header + function
        assert _with(text, memo) == _fresh(text), (header, function)
    for header, function in itertools.product(reversed(HEADERS), FUNCTIONS):
        text = header + function
        assert _with(text, memo) == _fresh(text), (header, function)


def test_an_edited_function_is_read_again_and_the_others_are_kept() -> None:
    memo = CodeMemo()
    before = "".join(f"def f{i}(x):\n    return f{i - 1}(x) + {i}\n\n" for i in range(1, 50))
    _with(before, memo)
    after = before.replace("return f9(x) + 10", "return f9(x) + 11")
    source = _with(after, memo)
    assert source == _fresh(after)
    assert source.units["f10"] != _fresh(before).units["f10"]
    assert source.units["f11"] == _fresh(before).units["f11"]


def test_carriage_returns_and_the_memo_through_a_save() -> None:
    stored = {}
    memo = CodeMemo(lambda: (stored.get("doc"), False), lambda doc: stored.update(doc=doc))
    text = "def f(x):\r\n    return x\r\n\r\ndef g():\r\n    return f(1)\r\n"
    assert _with(text, memo) == _fresh(text)
    plain = text.replace("\r\n", "\n")
    assert _with(plain, memo) == _fresh(plain)
    memo.save()
    assert len(stored["doc"]["statements"]) == 2  # the \r file's functions are not kept
    again = CodeMemo(lambda: (stored.get("doc"), False), lambda doc: stored.update(doc=doc))
    assert _with(plain, again) == _fresh(plain)
    assert len(again._statements) == 2  # both from the saved memo


def _meaning(text: str, memo: CodeMemo) -> str:
    return StatementMemo(text, memo).meaning(ast.parse(text))


def test_meaning_from_kept_dumps_is_the_meaning_read_afresh() -> None:
    """A module's meaning (memo.py) from the dumps kept by text equals the one computed with
    nothing kept; comments and formatting leave it equal, any change of code does not."""
    shared = CodeMemo()
    texts = []
    for header, combo in itertools.product(HEADERS, itertools.combinations(FUNCTIONS, 2)):
        text = (
            header
            + "\n".join(combo)
            + "\nclass C(Base):\n    x = 1\n\n    def m(self):\n        return f(1)\n"
        )
        texts.append(text)
        assert _meaning(text, shared) == _meaning(text, CodeMemo())
        assert _meaning(text, shared) == _meaning(text, CodeMemo())
    # equal exactly where the modules' whole dumps are (the meaning before statements.py)
    by_dump: dict[str, set[str]] = {}
    for t in texts:
        by_dump.setdefault(ast.dump(ast.parse(t)), set()).add(_meaning(t, shared))
    assert all(len(m) == 1 for m in by_dump.values())
    assert len(set().union(*by_dump.values())) == len(by_dump)
    text = texts[-1]
    commented = text.replace("return f(1)", "return f(1)  # why").replace("x = 1", "x = (1)")
    assert _meaning(commented + "\n# the end\n", shared) == _meaning(text, shared)
    assert _meaning(text.replace("return f(1)", "return f(2)"), shared) != _meaning(text, shared)
