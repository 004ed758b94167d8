"""The code table: lets a later make say which unit of code changed; and the code memo.

``.tipi_cache/code.msgpack`` maps a code fingerprint to its closure (unit → digest), for the
newest TABLE_SIZE fingerprints planned in the project. A trace keeps only the fingerprint;
when it differs from the current one, both are looked up here to name the units that changed.
A fingerprint missing from the table (pruned, or the table was lost) only makes the reason
less precise ("code of Train changed"). Kept apart from the closure code so that explaining
a decision never imports what computes closures.

``.tipi_cache/code_memo.msgpack`` (identity/memo.py: closures by class, reused by a re-plan
while the files they read mean the same, and each file's units by content hash) is read and
written here too: {"rules", "meanings", "groups", "closures", "sources"}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tipi.state.layout import CODE_MEMO
from tipi.state.statefile import map_problem, text_problem
from tipi.state.store import read_document, read_document_flagged, write_document

if TYPE_CHECKING:
    from tipi.identity.memo import CodeMemo

CODE_KIND = "code-table"
MEMO_KIND = "code-memo"
TABLE_SIZE = 2000  # fingerprints
TABLE_UNITS = 200_000  # units over all of them: a closure of a huge module is pruned sooner


def save_code_table(path: Path, units: Mapping[str, Mapping[str, str]], warn: Callable) -> None:
    """Add closures to the project's code table, keeping the newest TABLE_SIZE."""
    table, broken = read_document_flagged(path, CODE_KIND, warn, _table_problem)
    table = table or {}
    new = {fp: dict(u) for fp, u in units.items() if fp not in table}
    if not new and not broken:
        return
    table.update(new)
    kept: list[tuple[str, Any]] = []
    count = 0
    for fp, closure in reversed(list(table.items())):  # newest first
        size = len(closure) if isinstance(closure, dict) else 0
        if kept and (len(kept) >= TABLE_SIZE or count + size > TABLE_UNITS):
            break
        kept.append((fp, closure))
        count += size
    table = dict(reversed(kept))
    write_document(path, CODE_KIND, table)


class CodeTable(Mapping[str, Mapping[str, str]]):
    """The code table, read on first lookup (only a code change needs it)."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        self.path = path
        self.warn = warn
        self._table: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._table is None:
            self._table = read_document(self.path, CODE_KIND, self.warn, _table_problem) or {}
        return self._table

    def __getitem__(self, fp: str) -> Mapping[str, str]:
        units = self._load()[fp]
        if not isinstance(units, dict):
            raise KeyError(fp)
        return units

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _table_problem(table: Any) -> str | None:
    """What is wrong with a loaded table: {fingerprint: {unit: digest}}."""
    return map_problem(table, _units_problem)


def _units_problem(units: Any) -> str | None:
    return map_problem(units, text_problem)


def code_memo(code_table: Path, warn: Callable[[str], None]) -> CodeMemo:
    """The code memo beside the code table, read on first use."""
    from tipi.identity.memo import CodeMemo  # only a plan being made needs it

    path = code_table.with_name(CODE_MEMO)
    return CodeMemo(lambda: read_code_memo(path, warn), lambda m: write_code_memo(path, m))


def read_code_memo(path: Path, warn: Callable[[str], None]) -> tuple[dict[str, Any] | None, bool]:
    """The code memo (identity/memo.py: closures kept across makes) and whether the file was
    damaged (then after one warning: the memo is computed again and rewritten)."""
    return read_document_flagged(path, MEMO_KIND, warn, _memo_problem)


def write_code_memo(path: Path, memo: dict[str, Any]) -> None:
    write_document(path, MEMO_KIND, memo)


def _memo_problem(memo: Any) -> str | None:
    """What is wrong with a loaded memo (its entries are checked where they are used)."""
    problem = map_problem(memo)
    if problem:
        return problem
    for name, kind in (("rules", str), ("meanings", dict), ("groups", list), ("closures", dict)):
        if not isinstance(memo.get(name), kind):
            return f"{name} is not a {kind.__name__}"
    if not isinstance(memo.get("sources", {}), dict):
        return "sources is not a map"
    return None
