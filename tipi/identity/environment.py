"""The environment a step ran in: the versions of Python, tipi and the installed packages its
code imports. Recorded with every run and shown when it changes ("environment changed: torch
2.12.0 → 2.13.0"); it reruns steps only where the pipeline says `rerun_on_env = true`.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tipi._version import __version__

if TYPE_CHECKING:
    from importlib import metadata


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    """Top-level import name → distribution names (read once: it scans site-packages)."""
    from importlib import metadata

    return metadata.packages_distributions()


def versions(imports: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The versions of Python, tipi and the distributions providing `imports`, and the
    metadata files they were read from (a plan depends on them: an upgrade changes them).
    """
    found = {"python": platform.python_version(), "tipi": __version__}
    files = []
    for name in sorted(set(imports)):
        for dist in _providers(name):
            found[dist.metadata["Name"] or name] = dist.version
            folder = getattr(dist, "_path", None)  # PathDistribution: its .dist-info folder
            if isinstance(folder, Path):
                files.append(str(folder / "METADATA"))
    return found, files


def _providers(name: str) -> list[metadata.Distribution]:
    """The distributions that install the top-level module `name`: the one of that name
    when there is one (torch, numpy: no scan), else those site-packages says provide it
    (sklearn → scikit-learn, PIL → Pillow). importlib.metadata is imported here: ~12 ms,
    for the plans whose code imports packages only."""
    from importlib import metadata

    try:
        return [metadata.distribution(name)]
    except (metadata.PackageNotFoundError, ValueError):
        pass
    found = []
    for dist_name in _distributions().get(name, ()):
        try:
            found.append(metadata.distribution(dist_name))
        except metadata.PackageNotFoundError:
            continue
    return found
