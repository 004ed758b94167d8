"""tipi/config/params.py: a class's params read from its __init__, once per class and __init__."""

from __future__ import annotations

import pytest

from tipi.config.params import check_params, param_infos
from tipi.errors import ConfigError, Location


class Step:
    def __init__(self, controller, force: bool = False, epochs: int = 3, lr: float = 0.1):
        self.epochs, self.lr = epochs, lr


def here(key: str) -> Location:
    return Location(key=key)


def test_params_are_read_from_the_signature_and_hints():
    infos, var_keyword = param_infos(Step)
    assert [(i.name, i.type_label, i.default) for i in infos] == [
        ("epochs", "int", 3),
        ("lr", "float", 0.1),
    ]
    assert not var_keyword
    assert check_params(Step, {"epochs": 5}, here) == {"epochs": 5, "lr": 0.1}


def test_a_replaced_init_is_read_again_and_callers_cannot_spoil_the_memo():
    class Editable:
        def __init__(self, controller, force: bool = False, width: int = 8):
            pass

    first, _ = param_infos(Editable)
    first.clear()  # a caller's copy: the next read is whole
    assert [i.name for i in param_infos(Editable)[0]] == ["width"]

    def __init__(self, controller, force: bool = False, depth: int = 2, **extra):
        pass

    Editable.__init__ = __init__  # type: ignore[method-assign]
    infos, var_keyword = param_infos(Editable)
    assert [i.name for i in infos] == ["depth"] and var_keyword
    with pytest.raises(ConfigError, match="depth: expected int"):
        check_params(Editable, {"depth": "deep"}, here)


def test_hints_that_did_not_resolve_are_read_again():
    class Later:
        def __init__(self, controller, force: bool = False, size: Size = 1):  # noqa: F821
            pass

    assert param_infos(Later)[0][0].hint == "Size"  # not defined yet (a later notebook cell)
    globals()["Size"] = int
    try:
        assert param_infos(Later)[0][0].hint is int
    finally:
        del globals()["Size"]


def test_classes_equal_by_a_metaclass_are_read_each_for_itself():
    class ByName(type):
        def __eq__(cls, other: object) -> bool:
            return isinstance(other, type) and cls.__qualname__ == other.__qualname__

        def __hash__(cls) -> int:
            return hash(cls.__qualname__)

    def build(takes_depth: bool) -> type:
        if takes_depth:

            class Step(metaclass=ByName):
                def __init__(self, controller, force: bool = False, depth: int = 2):
                    pass

        else:

            class Step(metaclass=ByName):  # type: ignore[no-redef]
                def __init__(self, controller, force: bool = False, lr: float = 0.1):
                    pass

        return Step

    one, two = build(False), build(True)
    assert one == two
    assert [i.name for i in param_infos(one)[0]] == ["lr"]
    assert [i.name for i in param_infos(two)[0]] == ["depth"]
