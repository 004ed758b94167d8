"""The one TOML reader: pipeline files and sweep tables are regular UTF-8 files of bounded
size, parsed into values tipi's state can hold, every failure one ConfigError with file and
line."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from tipi.errors import ConfigError, Location

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def read_toml(file: Path) -> tuple[dict[str, Any], str]:
    """A TOML file's data and text (see read_text and parse_toml)."""
    text = read_text(file)
    return parse_toml(text, file), text


def parse_toml(text: str, file: Path) -> dict[str, Any]:
    """Parse `text` (read from `file`), with a ConfigError naming the line on bad syntax."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            "the file nests arrays or tables too deeply to read",
            hint=f"at most {MAX_DEPTH} levels of nesting",
            location=Location(file=file),
        ) from None
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION.search(str(exc))
        line = int(position.group(1)) if position else None
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise ConfigError(
            f"invalid TOML: {message}",
            hint="see https://toml.io for the syntax",
            location=Location(file=file, line=line),
        ) from None


MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 32
_INT_RANGE = (-(2**63), 2**64 - 1)  # what msgpack (and so tipi's state) can hold


def read_text(file: Path) -> str:
    """The text of a TOML file: a regular file of UTF-8 text of at most MAX_BYTES, read
    without blocking (a FIFO in its place cannot hang tipi)."""
    try:  # non-blocking: a FIFO in its place must not hang the make
        with open(os.open(file, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError("not a regular file", location=Location(file=file))
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file: {exc.strerror}", location=Location(file=file)
        ) from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
            hint="a pipeline file declares steps; keep data in input files",
            location=Location(file=file),
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}",
            hint="save the file as UTF-8 (TOML files are UTF-8)",
            location=Location(file=file, line=line),
        ) from None


def check_values(value: Any, key: tuple[str, ...], file: Path, lines: Any, depth: int = 0) -> None:
    """Every value fits tipi's state: integers within 64 bits, nesting within MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ConfigError(
            "value nested too deeply",
            hint=f"at most {MAX_DEPTH} levels",
            location=_where(file, key, lines),
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise ConfigError(
                f"integer {str(value)[:30]}{'...' if len(str(value)) > 30 else ''} does not "
                "fit in 64 bits",
                hint="write it as a float or a string",
                location=_where(file, key, lines),
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            check_values(v, (*key, str(k)), file, lines, depth + 1)
    elif isinstance(value, list):
        for v in value:
            check_values(v, key, file, lines, depth + 1)


def _where(file: Path, key: tuple[str, ...], lines: Any) -> Location:
    """Where a value is written: looked up only for a value refused (every value of a big
    pipeline is checked)."""
    return Location(file=file, key=".".join(key) or None, line=_line_of(lines, key))


def _line_of(lines: Any, key: tuple[str, ...]) -> int | None:
    for n in range(len(key), 0, -1):
        line = lines.get(key[:n])
        if line is not None:
            return line
    return None
