"""Code fingerprints and environments of a pipeline's steps and permanences, for a plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from tipi.identity.closure import CodeScanner
from tipi.identity.environment import versions
from tipi.identity.fingerprint import digest
from tipi.identity.memo import CodeMemo


class PipelineCode:
    """Fingerprints the code of classes (with their closures) for one plan.

    Attributes:
        units: code fingerprint → its closure, for every fingerprint computed.
        files: every source file read (a plan depends on them).
        absent: files whose appearance would change what an import resolves to.

    Args:
        memo: closures kept across makes (memo.py); None computes every one.
    """

    def __init__(self, root: Path, folder: Path, memo: CodeMemo | None = None) -> None:
        self.scanner = CodeScanner(root, folder, memo)
        self.units: dict[str, Mapping[str, str]] = {}
        self.files: set[str] = set()
        self.absent: set[str] = set()
        self.files_of: dict[str, frozenset[str]] = {}
        self._imports: dict[str, frozenset[str]] = {}
        self._environments: dict[frozenset[str], tuple[str, dict[str, str]]] = {}
        self.environments: dict[str, dict[str, str]] = {}

    def fingerprint(self, cls: type, refs: Iterable[str] = (), step: bool = False) -> str:
        """The code fingerprint of `cls` (and of the `module:attr` code it names in `refs`):
        its own `version` attribute when set (not an inherited one: a subclass's code is
        its own), else the hash of its closure. A `step`'s closure holds what runs when tipi
        imports the pipeline's modules (closure.py): that can change any step's result, a
        versioned one's too."""
        version = vars(cls).get("version")
        if version is not None and not step:
            return digest(["version", cls.__qualname__, str(version)])
        if version is not None:
            # The version stands for the class's own code, not for what other modules do to
            # it when tipi imports them (a sibling may patch the class): that still counts.
            closure = self.scanner.closure_of(None, (), step=True, reuse=False)  # its units
            own = {f"{cls.__qualname__}: version": digest(str(version))}
            closure = dataclasses.replace(closure, units={**own, **closure.units})
        else:
            closure = self.scanner.closure_of(cls, tuple(refs), step=step)
        fp = closure.fingerprint
        if not closure.reused:  # a reused one's units are in the code table already
            self.units[fp] = closure.units
        self.files |= closure.files | closure.read
        self.absent |= closure.absent
        self.files_of[fp] = closure.files
        self._imports[fp] = closure.imports
        return fp

    def environment(self, fingerprints: Iterable[str]) -> str:
        """The id of the environment of code with these fingerprints (its versions are in
        `environments`)."""
        imports = frozenset(i for fp in fingerprints for i in self._imports.get(fp, ()))
        if imports not in self._environments:
            found, files = versions(imports)
            env_id = digest(found)[:16]
            self._environments[imports] = (env_id, found)
            self.environments[env_id] = found
            self.files.update(files)
        return self._environments[imports][0]
