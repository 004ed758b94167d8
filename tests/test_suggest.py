"""tipi.suggest: the one "did you mean" of every unknown name, and what callers print with it."""

from __future__ import annotations

import pytest

from tipi.errors import ConfigError, UsageError
from tipi.graph.select import resolve_target
from tipi.permanences.factory import build
from tipi.suggest import close_matches, did_you_mean


def test_the_closest_names_come_first():
    assert close_matches("trian", ["evaluate", "train", "training"], n=2) == ["train", "training"]
    assert close_matches("xyz", ["train"]) == []
    assert close_matches("run", ["runs", "rung"], cutoff=0.99) == []


def test_one_close_name_is_offered_as_a_question():
    assert did_you_mean("gpus", ("gpu", "cpus_x", "type")) == "did you mean 'gpu'?"


def test_several_are_offered_when_asked_for():
    hint = did_you_mean("evl", ["eval", "evals", "fit"], n=3)
    assert hint == "did you mean 'eval' or 'evals'?"


def test_none_close_gives_none_so_callers_can_list_the_choices():
    assert did_you_mean("zzz", ["train", "eval"]) is None
    assert did_you_mean("zzz", []) is None
    choices = {"train": 1, "eval": 2}  # a mapping offers its keys
    assert (did_you_mean("zzz", choices) or f"steps: {', '.join(choices)}") == "steps: train, eval"
    assert did_you_mean("trian", choices) == "did you mean 'train'?"


def test_a_name_with_a_quote_is_still_quoted_readably():
    assert did_you_mean("its", ["it's"]) == 'did you mean "it\'s"?'


def test_an_unknown_target_offers_steps_or_lists_them(tmp_path):
    steps = ["train", "evaluate"]
    with pytest.raises(UsageError) as info:
        resolve_target("trian", steps, {}, tmp_path, tmp_path)
    assert info.value.hint == "did you mean 'train'?"
    with pytest.raises(UsageError) as info:
        resolve_target("zzz", steps, {}, tmp_path, tmp_path)
    assert info.value.hint == "steps: train, evaluate"


def test_an_unknown_factory_offers_the_close_one_and_lists_the_built_ins():
    with pytest.raises(ConfigError) as info:
        build("adamw_", {"adamw": dict, "sgd": dict}, {}, "optimizer")
    assert info.value.hint == (
        "did you mean 'adamw'? built-in: adamw, sgd; or give 'package.module:function'"
    )
