"""Reaching a Dask scheduler, or starting a local cluster, and losing one: errors a user can
read (a bad address, nothing listening, the scheduler gone mid-make), never tracebacks."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tipi.errors import TipiError, UsageError

CONNECT_TIMEOUT = "10s"
DEFAULT_PORT = 8786  # `dask scheduler`'s
# A cluster tipi starts leaves retries to tipi (dask_worker.py, `resources.retries`): Dask's
# own limit on workers that died running a task must not cut them short.
LOCAL_ALLOWED_FAILURES = 100
START_HINT = "start one with `dask scheduler`, or leave --scheduler out for a local cluster"
# The loggers that print a lost connection's tracebacks in this process; tipi says it once.
CLIENT_LOGGERS = ("distributed", "distributed.client", "distributed.core", "distributed.comm")


class SchedulerLost(TipiError):
    """The Dask scheduler went away during a make: the steps in flight did not finish."""

    exit_code = 1

    def __init__(
        self, address: str, steps: Sequence[str], cause: BaseException | None = None
    ) -> None:
        running = sorted(set(steps))
        during = f" while {', '.join(repr(s) for s in running)} ran" if running else ""
        super().__init__(
            f"lost the Dask scheduler at {address}{during}",
            hint="what finished is kept: run the make again once the scheduler is back",
        )
        self.__cause__ = cause


@contextlib.contextmanager
def preserved_environment() -> Iterator[None]:
    """Put os.environ back as it was: distributed's Nanny writes its workers' settings
    (OMP_NUM_THREADS=1, PYTHONHASHSEED, ...) into the parent's environment, which would
    change how torch computes in anything this process starts afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def connect(scheduler: str | None, slots: int | None) -> tuple[Any, Any]:
    """A client of the scheduler at `scheduler`, or of a LocalCluster of `slots` single-threaded
    worker processes started here; (client, the cluster to close or None).

    Raises:
        UsageError: distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "--executor dask needs dask.distributed, which is not installed",
            hint="pip install 'tipi[dask]'",
        ) from None
    if scheduler:
        probe(scheduler)
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except (OSError, ValueError, TypeError) as exc:  # TimeoutError is an OSError
            raise UsageError(
                f"cannot reach the Dask scheduler at {scheduler}: {_said(exc)}", hint=START_HINT
            ) from None
    failures = {"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}
    with preserved_environment(), dask.config.set(failures):  # nannies set OMP_NUM_THREADS=1
        cluster = LocalCluster(
            n_workers=slots or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            env={"TIPI_NO_LIVE": "1"},
        )
        return Client(cluster), cluster


def probe(address: str) -> None:
    """Refuse at once an address that is not one, or where nothing listens (the client
    would try again for its whole timeout); anything else is left to the client.

    Raises:
        UsageError: the address cannot be parsed, its host is unknown, or it refuses.
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:  # http://HOST:8787 is the dashboard, not the scheduler
            raise ValueError(f"unknown scheme '{scheme}'")
        if scheme not in ("tcp", "tls"):
            return
        host, port = parse_host_port(location, default_port=DEFAULT_PORT)
        if not host or not 0 < int(port) < 65536:
            raise ValueError("it names no host" if not host else f"port {port} is out of range")
    except ValueError as exc:
        raise UsageError(
            f"'{address}' is not a Dask scheduler address: {exc}",
            hint="write it as tcp://HOST:PORT, as `dask scheduler` prints it",
        ) from None
    try:
        with socket.create_connection((host, int(port)), timeout=3) as peer:
            if scheme == "tcp":
                _greets(peer, address)
    except ConnectionRefusedError:
        raise UsageError(
            f"cannot reach the Dask scheduler at {address}: nothing listens at {host}:{port}",
            hint=START_HINT,
        ) from None
    except socket.gaierror:
        raise UsageError(
            f"cannot reach the Dask scheduler at {address}: unknown host '{host}'",
            hint=START_HINT,
        ) from None
    except OSError:  # slow or filtered: the client's own timeout decides
        return


def _greets(peer: socket.socket, address: str) -> None:
    """A Dask scheduler speaks first (its handshake); the client waits for it with no time
    limit of its own, so a port where something else listens (an HTTP server, the dashboard)
    would hold the make forever.

    Raises:
        UsageError: nothing came within the connect timeout, or the peer hung up.
    """
    from dask.utils import parse_timedelta

    peer.settimeout(parse_timedelta(CONNECT_TIMEOUT))
    try:
        said = peer.recv(1)
    except TimeoutError:
        said = None
    except OSError:
        return  # reset or the like: the client will say what it makes of it
    if not said:
        why = "hung up" if said == b"" else f"said nothing within {CONNECT_TIMEOUT}"
        raise UsageError(
            f"cannot reach the Dask scheduler at {address}: something listens there but "
            f"{why}: not a Dask scheduler (a dashboard's port, or another service?)",
            hint="give the address `dask scheduler` prints (tcp://HOST:8786 by default)",
        )


def quiet_client_logs() -> Callable[[], None]:
    """Silence distributed's client-side logging while tipi reports for it; returns the
    function that puts the levels back."""
    saved = {name: logging.getLogger(name).level for name in CLIENT_LOGGERS}
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def restore() -> None:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)

    return restore


def _said(error: BaseException) -> str:
    """An exception's first line (distributed's run over several)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
