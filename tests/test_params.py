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
