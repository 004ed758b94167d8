"""From a sweep table to the variants to run: a grid's product or seeded random draws."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import xxhash

from tipi.errors import UsageError
from tipi.sweep.spec import Parameter, SweepSpec, slug

Params = dict[str, Any]
MAX_NAME = 80


def variants(spec: SweepSpec, count: int | None = None, seed: int = 0) -> list[Params]:
    """The params of each variant, in the order they run, without duplicates.

    Args:
        count: how many variants at most (random: how many to draw); default: run_cap.
        seed: the random method's seed: the same seed draws the same variants.
    """
    cap = count if count is not None else spec.run_cap
    if spec.method in ("grid", "folds"):  # folds: a grid whose last key is the fold
        keys = list(spec.parameters)
        chosen = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(spec.parameters[k].values for k in keys))
        ]
    elif spec.method == "random":
        if cap is None:
            raise UsageError(
                "a random sweep needs a number of variants",
                hint="set run_cap in the sweep file, or pass --count N",
            )
        rng = random.Random(seed)
        chosen = [{k: draw(p, rng) for k, p in spec.parameters.items()} for _ in range(cap)]
    else:
        raise UsageError(
            f"method '{spec.method}' needs W&B's sweep controller",
            hint="run it with --wandb (W&B online), or use method grid or random",
        )
    unique: list[Params] = []
    seen: set[str] = set()
    for params in chosen:
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(params)
    return unique[:cap] if cap is not None else unique


def draw(parameter: Parameter, rng: random.Random) -> Any:
    """One value of `parameter`, as W&B's random search draws it. Continuous values are
    rounded to 6 significant digits: they name folders and are typed back as TOML."""
    p, kind = parameter, parameter.distribution
    if kind in ("constant", "categorical"):
        weights = list(p.probabilities) or None
        return rng.choices(p.values, weights=weights)[0]
    if kind == "int_uniform":
        return rng.randint(int(p.low), int(p.high))
    if kind in ("uniform", "q_uniform"):
        value = rng.uniform(p.low, p.high)
    elif kind == "log_uniform":
        value = math.exp(rng.uniform(p.low, p.high))
    elif kind in ("log_uniform_values", "q_log_uniform_values"):
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    elif kind in ("normal", "q_normal"):
        value = rng.gauss(p.mu, p.sigma)
    else:  # log_normal, q_log_normal
        value = math.exp(rng.gauss(p.mu, p.sigma))
    if kind.startswith("q_"):
        value = round(value / p.q) * p.q
        return int(value) if float(p.q).is_integer() else float(f"{value:.6g}")
    return float(f"{value:.6g}")


def variant_name(params: Mapping[str, Any], swept: Sequence[str]) -> str:
    """A folder name saying what differs: `lr=0.001,batch_size=32`.

    Keys are shortened to their last part unless two would then look alike; a name that
    had to be changed to be a folder name, or is too long, gets a hash of the params.
    """
    keys = [k for k in swept if k in params] or list(params)
    shorts = [k.rsplit(".", 1)[-1] for k in keys]
    if len(set(shorts)) < len(shorts):
        shorts = keys
    text = ",".join(f"{s}={_text(params[k])}" for s, k in zip(shorts, keys, strict=True))
    name = slug(text)
    if name != text or len(name) > MAX_NAME:
        canonical = json.dumps(dict(params), sort_keys=True, default=str)
        digest = xxhash.xxh3_64_hexdigest(canonical.encode())
        name = f"{name[: MAX_NAME - 9]}-{digest[:8]}"
    return name or "default"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def toml_value(value: Any) -> str:
    """`value` as a TOML literal, for a `--set KEY=VALUE` override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise UsageError(f"cannot pass {value!r} ({type(value).__name__}) as a param")


def overrides(params: Mapping[str, Any]) -> list[str]:
    """Each param as a `--set` string."""
    return [f"{key}={toml_value(value)}" for key, value in params.items()]
