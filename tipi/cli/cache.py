"""`tipi cache gc | push | pull`: manage the run cache and share it through a remote."""

from __future__ import annotations

from typing import Annotated

import typer

from tipi.cli.app import app, guarded, stdout

cache_app = typer.Typer(
    name="cache",
    help="The run cache: outputs of earlier runs, restored when a fingerprint matches again.",
    no_args_is_help=True,
)
app.add_typer(cache_app)

RemoteArg = Annotated[
    str,
    typer.Option(
        "--remote", metavar="URL", help="A directory, file://, s3://, gs:// (fsspec) URL."
    ),
]


def _store():
    from tipi.cache.content import ContentStore
    from tipi.config.project import require_project_root
    from tipi.engine import CACHE_DIR

    return ContentStore(require_project_root() / CACHE_DIR)


def _lock():
    from tipi.cache.lock import ProjectLock
    from tipi.config.project import require_project_root
    from tipi.engine import CACHE_DIR

    lock = ProjectLock(require_project_root() / CACHE_DIR, lambda m: stdout().print(m))
    lock.acquire()
    return lock


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return str(count)


@cache_app.command("gc")
@guarded
def gc_command(
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", metavar="N", help="Keep the N newest runs of each step."),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", metavar="SIZE", help="Then drop the oldest runs to fit (2GB)."),
    ] = None,
) -> None:
    """Remove old runs from the run cache, and the files no remaining run needs."""
    from tipi.cache.collect import collect, parse_size
    from tipi.errors import UsageError

    if keep_last is None and max_size is None:
        raise UsageError("say what to keep", hint="tipi cache gc --keep-last 3, or --max-size 2GB")
    limit = parse_size(max_size) if max_size is not None else None
    lock = _lock()
    try:
        done = collect(_store(), keep_last, limit)
    finally:
        lock.release()
    stdout().print(
        f"removed {done.records} run(s) and {done.objects} file(s) ({_size(done.bytes)}); "
        f"kept {done.kept_records} run(s) ({_size(done.kept_bytes)})",
        highlight=False,
    )


@cache_app.command("push")
@guarded
def push_command(remote: RemoteArg) -> None:
    """Upload the runs the remote does not have (objects first: safe to run concurrently)."""
    from tipi.cache.remote import RemoteStore

    done = RemoteStore(remote).push(_store())
    stdout().print(
        f"pushed {done.records} run(s), {done.objects} file(s) ({_size(done.bytes)}) to {remote}",
        highlight=False,
    )


@cache_app.command("pull")
@guarded
def pull_command(remote: RemoteArg) -> None:
    """Download the runs this project does not have; the next make restores what matches."""
    from tipi.cache.remote import RemoteStore

    lock = _lock()
    try:
        done = RemoteStore(remote).pull(_store())
    finally:
        lock.release()
    stdout().print(
        f"pulled {done.records} run(s), {done.objects} file(s) ({_size(done.bytes)}) from {remote}",
        highlight=False,
    )
