"""Secrets never leave the process, and shown text never drives the terminal.

What is shown or logged hides secrets, what is cached keeps only a digest of them (so a
changed key still counts as a change). A secret is the value of a key named like one
(`api_key`, `hf_token`, `db_password`; not `tokenizer` or `max_tokens`), or any string holding
the value of an environment variable named like one (`WANDB_API_KEY`).

Free text a step produced (an exception's message, its traceback, what it printed) is not
data with keys: `hide_secrets` replaces, inside it, each value of a secret environment
variable and each value of a secret-named param or permanence param this process was told
about (`declare_secrets`, done by every make for its pipeline), also as `repr`, JSON or a URL
would quote it. `printable` escapes control characters (ESC, C1 such as CSI `\x9b`, bidi
overrides) of text that is shown: a metric name or an exception message is data, and must not
write the clipboard (OSC 52), retitle the terminal or colour what follows.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

HIDDEN = "<hidden>"
_SECRET_NAME = re.compile(
    r"(?<![a-z])(secrets?|token|passw(?:or)?d|pwd|credentials?|api_?key|access_?key"
    r"|private_?key|secret_?key|auth_?key)(?![a-z])"
)
_NOT_SECRET_VARIABLES = frozenset({"PWD", "OLDPWD"})  # the shell's working directories
# A secret param shorter than this is not looked for in free text: hiding every "abc" of a
# traceback would blank ordinary words, and such a value guards nothing.
MIN_TEXT_SECRET = 4
# The secret-named param values of the pipelines this process made (declare_secrets), and
# what gives more of them when first needed: most makes never show a failure.
_declared: set[str] = set()
_pending: dict[Hashable, Callable[[], Iterable[str]]] = {}


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
        # a value under a secret param is secret too (`train.credentials.user=...`)
        if equals and any(is_secret_name(part) for part in key.split(".")[1:] or [key]):
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


def secret_params(value: Any) -> set[str]:
    """The values held under secret-named keys anywhere in `value` (params, permanence
    configs), as text, `MIN_TEXT_SECRET` characters or more: what `hide_secrets` looks for."""
    found: set[str] = set()
    _secret_leaves(value, False, found)
    return found


def declare_secrets(
    values: Iterable[str] | Callable[[], Iterable[str]], key: Hashable = None
) -> None:
    """Remember `values` (`secret_params` of a pipeline), or a function that returns them
    when first needed, as secrets for every later `hide_secrets` of this process: the text
    of a failure is shown far from its params. `key`: what the function reads (a process
    making the same pipeline a thousand times keeps one function, not a thousand)."""
    if callable(values):
        _pending[key if key is not None else values] = values
        return
    _declared.update(v for v in values if isinstance(v, str) and len(v) >= MIN_TEXT_SECRET)


def hide_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each secret in it replaced by `"<hidden>"`: the values of secret
    environment variables, the declared secret params and `secrets`, each also as `repr`, JSON
    or a URL quotes it. For free text (an error, a traceback, a step's output)."""
    return secret_hider(secrets)(text) if text else text


def secret_hider(secrets: Iterable[str] = ()) -> Callable[[str], str]:
    """`hide_secrets` with the secrets looked up once: for many strings (a run as JSON)."""
    while _pending:
        declare_secrets(_pending.pop(next(iter(_pending)))())
    forms = _text_forms((*secret_values(), *_declared, *secrets))
    # A message may wrap a long secret over lines (a fixed-width log, textwrap): text that
    # holds one once its whitespace is taken out hides it, whitespace and all.
    wrapped = [f for f in forms if len(f) >= 8 and "".join(f.split()) == f]

    def hide(text: str) -> str:
        for secret in forms:  # longest first: a secret holding another is hidden whole
            if secret in text:
                text = text.replace(secret, HIDDEN)
        if wrapped:
            squeezed = "".join(text.split())
            for secret in wrapped:
                if secret in squeezed:
                    text = _spread(secret).sub(HIDDEN, text)
        return text

    return hide


def printable(text: str, lines: bool = False) -> str:
    """`text` with control characters escaped (`\\x1b`, `\\x9b`, `\\u202e`), so that showing
    it cannot move the cursor, clear the screen, retitle the terminal or write its clipboard.
    `lines`: keep newlines and tabs (a traceback)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or (lines and c in "\n\t") else _escaped(c) for c in text)


def printable_json(text: str) -> str:
    """JSON text (`json.dumps(..., ensure_ascii=False)`) with the characters that are not
    printable and that JSON leaves raw (C1 controls, bidi overrides) written as `\\uXXXX`:
    the same data, safe to print. Outside strings JSON has only ASCII, so only strings change."""
    if text.isprintable():
        return text
    import json

    return "".join(c if c.isprintable() or c in "\n\t" else json.dumps(c)[1:-1] for c in text)


def printable_html(text: str) -> str:
    """`text` for HTML: control characters escaped as `printable` shows them (a browser would
    drop them, a terminal that shows the file would obey them), then `html.escape`d."""
    import html

    return html.escape(printable(text))


def shown_text(text: str, lines: bool = False) -> str:
    """A step's free text, ready to show or keep: secrets hidden, control characters escaped."""
    return printable(hide_secrets(text), lines)


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode()


@functools.lru_cache(maxsize=256)
def _forms(secret: str) -> tuple[str, ...]:
    import json  # only when a secret is looked for in text
    from urllib.parse import quote, quote_plus

    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], quote(secret, safe="")}
    forms.add(quote_plus(secret, safe=""))
    if "\n" in secret:  # a PEM key: a message may quote one line of it
        forms.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 8)
    return tuple(f for f in forms if len(f) >= MIN_TEXT_SECRET)


@functools.lru_cache(maxsize=256)
def _spread(secret: str) -> re.Pattern[str]:
    """`secret` with any whitespace between its characters."""
    return re.compile(r"\s*".join(map(re.escape, secret)))


def _text_forms(secrets: Iterable[str]) -> list[str]:
    forms = {form for secret in set(secrets) if secret for form in _forms(secret)}
    return sorted(forms, key=len, reverse=True)


def _secret_leaves(value: Any, secret: bool, into: set[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _secret_leaves(item, secret or is_secret_name(str(key)), into)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _secret_leaves(item, secret, into)
    elif secret and value is not None and not isinstance(value, bool):
        text = value if isinstance(value, str) else str(value)
        if len(text) >= MIN_TEXT_SECRET:
            into.add(text)
