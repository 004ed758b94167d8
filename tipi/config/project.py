"""Finds the project root and its pipelines (`<root>/pipelines/<name>/pipeline.toml`)."""

from __future__ import annotations

from pathlib import Path

from tipi.errors import UsageError
from tipi.paths import NAME_RULE, is_name
from tipi.suggest import did_you_mean

PIPELINES_DIR = "pipelines"
PIPELINE_FILE = "pipeline.toml"


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest ancestor of `start` (default: the working directory) holding `pipelines/`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PIPELINES_DIR).is_dir():
            return folder
    return None


def require_project_root(start: Path | None = None) -> Path:
    """Like find_project_root, but a missing project is a usage error with a next step."""
    root = find_project_root(start)
    if root is None:
        raise UsageError(
            f"no tipi project here: no '{PIPELINES_DIR}/' folder in {Path.cwd()} or above",
            hint="run `tipi init NAME` to create a pipeline, or cd into a project",
        )
    return root


def list_pipelines(root: Path) -> list[str]:
    """Names of the folders under `pipelines/` that hold a pipeline.toml."""
    folder = root / PIPELINES_DIR
    if not folder.is_dir():
        return []
    return sorted(
        p.parent.name for p in folder.glob(f"*/{PIPELINE_FILE}") if is_name(p.parent.name)
    )


def locate_pipeline(root: Path, name: str | None, config: Path | None = None) -> tuple[str, Path]:
    """Return (name, TOML file) for pipeline `name`; None means the project's only pipeline.

    Args:
        root: the project root.
        name: the pipeline's folder name, or None.
        config: another TOML file to use instead of `pipeline.toml`, in the pipeline folder.
    """
    available = list_pipelines(root)
    if name is None:
        if len(available) == 1:
            name = available[0]
        else:
            raise UsageError(
                "which pipeline? "
                + (f"this project has {len(available)}" if available else "this project has none"),
                hint=f"pass -p NAME ({', '.join(available)})"
                if available
                else "run `tipi init NAME`",
            )
    if not is_name(name):
        raise UsageError(
            f"{name!r} is not a pipeline name",
            hint=f"-p takes the name of a folder under {PIPELINES_DIR}/ ({NAME_RULE}), "
            "never a path",
        )
    folder = root / PIPELINES_DIR / name
    if not (folder / PIPELINE_FILE).is_file() and config is None:
        hint = did_you_mean(name, available) or f"pipelines: {', '.join(available) or 'none'}"
        raise UsageError(f"no pipeline '{name}' in {root / PIPELINES_DIR}", hint=hint)
    if config is None:
        return name, folder / PIPELINE_FILE
    candidate = (folder / config).resolve()
    if not candidate.is_relative_to(folder.resolve()):
        raise UsageError(
            f"config file '{config}' is outside the pipeline folder {folder}",
            hint=f"-c names a TOML file in {folder.relative_to(root)}/",
        )
    if not candidate.is_file():
        raise UsageError(f"config file '{config}' not found in {folder}")
    return name, candidate
