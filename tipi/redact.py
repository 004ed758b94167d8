"""Secrets never leave the process: what is shown or logged hides them, what is cached keeps
only a digest of them (so a changed key still counts as a change).

A secret is the value of a key named like one (`api_key`, `hf_token`, `db_password`; not
`tokenizer` or `max_tokens`), or any string holding the value of an environment variable
named like one (`WANDB_API_KEY`).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

HIDDEN = "<hidden>"
_SECRET_NAME = re.compile(
    r"(?<![a-z])(secrets?|token|passw(?:or)?d|pwd|credentials?|api_?key|access_?key"
    r"|private_?key|secret_?key|auth_?key)(?![a-z])"
)
_NOT_SECRET_VARIABLES = frozenset({"PWD", "OLDPWD"})  # the shell's working directories


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for a key or variable name that holds a secret (`WANDB_API_KEY`, `hf_token`)."""
    return _SECRET_NAME.search(name.lower()) is not None


def secret_values() -> set[str]:
    """The values of this process's secret environment variables (8 characters or more)."""
    environ = os.environ
    named = [k for k in environ if k not in _NOT_SECRET_VARIABLES and is_secret_name(k)]
    return {value for value in map(environ.get, named) if value and len(value) >= 8}


def redact(value: Any) -> Any:
    """`value` as JSON data with every secret replaced by `"<hidden>"`: for what is shown or
    logged. Paths and other objects become their `str`."""
    return _walk(value, secret_values(), lambda secret: HIDDEN)


def conceal(value: Any, secrets: set[str] | None = None) -> Any:
    """`value` with every secret replaced by `"<secret xxh:DIGEST>"`: for what is cached or
    recorded, where a changed key must still read as a change. `secrets`: `secret_values()`,
    when the caller conceals many values at once."""
    return _walk(value, secret_values() if secrets is None else secrets, _digest)


def redact_command(argv: Iterable[str]) -> list[str]:
    """A command line with the values of secret `--set KEY=VALUE` overrides hidden."""
    shown, secrets = [], secret_values()
    for arg in argv:
        key, equals, _ = arg.partition("=")
        if equals and is_secret_name(key.rsplit(".", 1)[-1]):
            arg = f"{key}={HIDDEN}"
        elif any(secret in arg for secret in secrets):
            arg = HIDDEN
        shown.append(arg)
    return shown


def _digest(secret: Any) -> str:
    import xxhash

    return f"<secret xxh:{xxhash.xxh3_64_hexdigest(repr(secret).encode())}>"


def _walk(value: Any, secrets: set[str], hide: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            str(k): hide(v) if is_secret_name(str(k)) else _walk(v, secrets, hide)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(v, secrets, hide) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return hide(text) if any(secret in text for secret in secrets) else text
