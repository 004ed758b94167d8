"""The TOML value ↔ type hint truth table used to check params."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import pytest

from tipi.config.types import TypeMismatch, coerce, type_name


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (3, int, 3),
        (3, float, 3.0),
        (0.5, float, 0.5),
        ("x", str, "x"),
        (True, bool, True),
        ("a/b", Path, Path("a/b")),
        ([1, 2], list[int], [1, 2]),
        ([1, 2], list[float], [1.0, 2.0]),
        ([1, 2], tuple[int, ...], (1, 2)),
        ([1, "a"], tuple[int, str], (1, "a")),
        ({"a": 1}, dict[str, float], {"a": 1.0}),
        (None, Optional[int], None),  # noqa: UP045 - the old spelling must work too
        (None, int | None, None),
        (4, int | None, 4),
        ("adam", Literal["adam", "sgd"], "adam"),
        ({"any": [1]}, Any, {"any": [1]}),
        ([1], list, [1]),
    ],
)
def test_accepted_values(value, hint, expected):
    result = coerce(value, hint)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint", "expected_name"),
    [
        ("3", int, "int"),
        (True, int, "int"),
        (1.5, int, "int"),
        (1, str, "str"),
        ([1, "a"], list[int], "int"),
        ({"a": "x"}, dict[str, int], "int"),
        ("rmsprop", Literal["adam", "sgd"], "'adam' | 'sgd'"),
        ([1, 2, 3], tuple[int, int], "exactly 2 items"),
        ("x", int | None, "int | None"),
        (3, list[int], "list[int]"),
    ],
)
def test_rejected_values(value, hint, expected_name):
    with pytest.raises(TypeMismatch) as info:
        coerce(value, hint)
    assert expected_name in str(info.value)


def test_type_names_are_readable():
    assert type_name(float) == "float"
    assert type_name(list[int]) == "list[int]"
    assert type_name(Path) == "Path"
