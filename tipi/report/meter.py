"""The text of a progress line, as tqdm writes it: `desc:  40%|████      | 4/10 [00:02<00:03,
1.95it/s, loss=0.31]`. Used for the plain lines of a pipe or CI log and for `str(progress_bar)`,
so that logs read as tqdm's did. Imports nothing of Rich (the no-op fast path stays light).
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

UTF = " " + "".join(chr(c) for c in range(0x258F, 0x2587, -1))  # " ▏▎▍▌▋▊▉█"
ASCII = " 123456789#"
BLANK = "  "
_ANSI = re.compile(r"\x1b\[[;\d]*[A-Za-z]")


def format_sizeof(num: float, suffix: str = "", divisor: float = 1000) -> str:
    """`num` with an SI prefix and three significant figures: 1234 → `1.23k`."""
    for prefix in ("", "k", "M", "G", "T", "P", "E", "Z"):
        if abs(num) < 999.5:
            if abs(num) < 99.95:
                if abs(num) < 9.995:
                    return f"{num:1.2f}{prefix}{suffix}"
                return f"{num:2.1f}{prefix}{suffix}"
            return f"{num:3.0f}{prefix}{suffix}"
        num /= divisor
    return f"{num:3.1f}Y{suffix}"


def format_interval(seconds: float) -> str:
    """`[H:]MM:SS`: 61 → `01:01`, 3723 → `1:02:03`."""
    sign = "-" if seconds < 0 else ""
    minutes, secs = divmod(int(abs(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{sign}{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{sign}{minutes:02d}:{secs:02d}"
    )


def format_num(n: float) -> str:
    """The shorter of `n` and `n` with three significant figures."""
    short = f"{n:.3g}".replace("e+0", "e+").replace("e-0", "e-")
    full = str(n)
    return short if len(short) < len(full) else full


def disp_len(text: str) -> int:
    """Columns `text` takes on a terminal: ANSI codes take none, wide characters two."""
    plain = _ANSI.sub("", text)
    return sum(2 if unicodedata.east_asian_width(c) in "FW" else 1 for c in plain)


def disp_trim(text: str, width: int) -> str:
    """`text` cut to `width` columns; when it held ANSI codes, one still open is reset."""
    if len(text) == disp_len(text):
        return text[:width]
    coloured = bool(_ANSI.search(text))
    while disp_len(text) > width:
        text = text[:-1]
    if coloured and _ANSI.search(text) and not text.endswith("\x1b[0m"):
        text += "\x1b[0m"
    return text


def warn_tqdm(message: str) -> None:
    """Warn with tqdm's TqdmWarning when tqdm is installed, so that warning filters written for
    tqdm still match (a UserWarning otherwise)."""
    try:
        from tqdm import TqdmWarning as category
    except ImportError:
        category = UserWarning  # type: ignore[assignment,misc]
    warnings.warn(message, category, stacklevel=3)


class Bar:
    """A bar `frac` full, `width` columns wide, drawn with `charset` (empty, then fills)."""

    def __init__(self, frac: float, width: int = 10, charset: str = UTF) -> None:
        if not 0 <= frac <= 1:
            warn_tqdm("clamping frac to range [0, 1]")
        self.frac = max(0.0, min(1.0, frac))
        self.width, self.charset = width, charset
        self.format_called = False

    def __format__(self, spec: str) -> str:
        self.format_called = True
        charset, width = self.charset, self.width
        if spec and spec[-1] in "aub":
            charset = {"a": ASCII, "u": UTF, "b": BLANK}[spec[-1]]
            spec = spec[:-1]
        if spec:
            width = int(spec) if int(spec) >= 0 else max(0, self.width + int(spec))
        steps = len(charset) - 1
        full, part = divmod(int(self.frac * width * steps), steps)
        text = charset[-1] * full
        if full < width:
            text += charset[part] + charset[0] * (width - full - 1)
        return text


def format_meter(
    n: float,
    total: float | None,
    elapsed: float,
    ncols: int | None = None,
    prefix: str = "",
    ascii: bool | str | None = False,
    unit: str = "it",
    unit_scale: bool | float = False,
    rate: float | None = None,
    bar_format: str | None = None,
    postfix: Any = None,
    unit_divisor: float = 1000,
    initial: float = 0,
    colour: str | None = None,
    **extra: Any,
) -> str:
    """tqdm's progress line: `{l_bar}{bar}{r_bar}`, where l_bar is `{desc}: {percentage}%|`
    and r_bar `| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]`; or
    `bar_format` with the same fields. `ncols`: the width of the whole line (0: no bar);
    `colour` is accepted and not drawn (a plain line has no colour)."""
    if total and (n >= total + 0.5 or total == float("inf")):
        total = None  # past the total, or endless: shown as a count
    if unit_scale and unit_scale not in (True, 1):
        total = total * unit_scale if total else total
        n *= unit_scale
        rate = rate * unit_scale if rate else rate
        unit_scale = False
    if rate is None and elapsed:
        rate = (n - initial) / elapsed
    inv_rate = 1 / rate if rate else None
    rate_noinv_fmt = (format_sizeof(rate) if unit_scale else f"{rate:5.2f}") if rate else "?"
    rate_noinv_fmt += f"{unit}/s"
    rate_inv_fmt = (
        (format_sizeof(inv_rate) if unit_scale else f"{inv_rate:5.2f}") if inv_rate else "?"
    ) + f"s/{unit}"
    rate_fmt = rate_inv_fmt if inv_rate and inv_rate > 1 else rate_noinv_fmt
    if unit_scale:
        n_fmt = format_sizeof(n, divisor=unit_divisor)
        total_fmt = format_sizeof(total, divisor=unit_divisor) if total is not None else "?"
    else:
        n_fmt, total_fmt = str(n), str(total) if total is not None else "?"
    if isinstance(postfix, str) or not postfix:  # else a list or dict that bar_format indexes
        postfix = ", " + postfix if postfix else ""
    remaining = (total - n) / rate if rate and total else 0
    remaining_str = format_interval(remaining) if rate else "?"
    try:
        eta = (
            datetime.now() + timedelta(seconds=remaining)
            if rate and total
            else datetime.fromtimestamp(0, UTC)
        )
    except OverflowError:
        eta = datetime.max
    l_bar = (prefix if prefix.endswith(": ") else prefix + ": ") if prefix else ""
    elapsed_str = format_interval(elapsed)
    r_bar = f"| {n_fmt}/{total_fmt} [{elapsed_str}<{remaining_str}, {rate_fmt}{postfix}]"
    fields = {
        "n": n,
        "n_fmt": n_fmt,
        "total": total,
        "total_fmt": total_fmt,
        "elapsed": elapsed_str,
        "elapsed_s": elapsed,
        "ncols": ncols,
        "desc": prefix or "",
        "unit": unit,
        "rate": inv_rate if inv_rate and inv_rate > 1 else rate,
        "rate_fmt": rate_fmt,
        "rate_noinv": rate,
        "rate_noinv_fmt": rate_noinv_fmt,
        "rate_inv": inv_rate,
        "rate_inv_fmt": rate_inv_fmt,
        "postfix": postfix,
        "unit_divisor": unit_divisor,
        "colour": colour,
        "remaining": remaining_str,
        "remaining_s": remaining,
        "l_bar": l_bar,
        "r_bar": r_bar,
        "eta": eta,
        **extra,
    }
    if not total and not bar_format:
        text = f"{l_bar}{n_fmt}{unit} [{elapsed_str}, {rate_fmt}{postfix}]"
        return disp_trim(text, ncols) if ncols else text
    if total:
        frac = n / total
        l_bar += f"{frac * 100:3.0f}%|"
        if ncols == 0:
            return l_bar[:-1] + r_bar[1:]
        fields.update(l_bar=l_bar, percentage=frac * 100)
        charset = ASCII if ascii is True else ascii or UTF
    else:
        l_bar += "|"
        frac, charset = 0, BLANK
        fields.update(l_bar=l_bar, percentage=0)
    if not bar_format:
        bar_format = "{l_bar}{bar}{r_bar}"
    elif not prefix:
        bar_format = bar_format.replace("{desc}: ", "")
    probe = Bar(0, 0)
    nobar = bar_format.format(bar=probe, **fields)
    if not probe.format_called:
        return disp_trim(nobar, ncols) if ncols else nobar
    bar = Bar(frac, max(1, ncols - disp_len(nobar)) if ncols else 10, charset)
    text = bar_format.format(bar=bar, **fields)
    return disp_trim(text, ncols) if ncols else text
