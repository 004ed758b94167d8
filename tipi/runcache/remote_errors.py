"""Why a remote cache failed, in one line a person can act on (`RemoteUnavailable`)."""

from __future__ import annotations

import errno
import socket
import ssl
from urllib.parse import urlsplit

NO_CREDENTIALS = (
    "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or read a public "
    """bucket anonymously with FSSPEC_S3='{"anon": true}')"""
)
# botocore's and aiohttp's network failures that are not builtin ConnectionErrors
_NETWORK = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ServerDisconnectedError",
        "ClientConnectorError",
        "ServerTimeoutError",
    }
)


class RemoteUnavailable(OSError):
    """The remote cache cannot be used (network, credentials, missing bucket, access denied,
    throttling, a server gone mid-transfer); the message names the remote and the cause.

    Attributes:
        url: the remote.
        cause: why, in one line ("cannot connect to http://127.0.0.1:9/ (connection refused)").
    """

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"remote cache {url}: {cause}")
        self.url = url
        self.cause = cause

    def __str__(self) -> str:
        return f"remote cache {self.url}: {self.cause}"

    def __reduce__(self) -> tuple:  # pickled across processes (a Dask worker's failure)
        return (type(self), (self.url, self.cause))


def describe(exc: BaseException) -> str:
    """The cause of a remote file system's failure, in one line."""
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return NO_CREDENTIALS if name != "DefaultCredentialsError" else _first_line(exc)
    if name in _NETWORK or _chain(
        exc, ConnectionError, TimeoutError, socket.gaierror, ssl.SSLError
    ):
        return _connection(exc)
    if isinstance(exc, PermissionError):
        return f"access denied ({_first_line(exc)})"
    if isinstance(exc, OSError) and exc.errno == errno.EBUSY:
        return f"the server is busy or throttling requests ({_first_line(exc)}); try again later"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _first_line(exc)  # [Errno 28] No space left on device: a directory remote
    return f"{name}: {_first_line(exc)}"


def _connection(exc: BaseException) -> str:
    where = _endpoint(exc)
    target = f"cannot connect to {where}" if where else "cannot connect"
    if isinstance(_chain(exc, ConnectionRefusedError), ConnectionRefusedError):
        return f"{target} (connection refused)"
    if _chain(exc, socket.gaierror):
        return f"{target} (unknown host)"
    broken = _chain(exc, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
    if broken is not None or "Disconnected" in type(exc).__name__:
        return f"the connection to {where or 'the server'} broke ({_first_line(broken or exc)})"
    if _chain(exc, ssl.SSLError):
        return f"{target} (TLS error: {_first_line(_chain(exc, ssl.SSLError))})"
    name = type(exc).__name__
    if _chain(exc, TimeoutError) or "Timeout" in name:
        return f"{target} (timed out)"
    if name == "EndpointConnectionError":
        return f"{target} (no answer)"
    return f"{target} ({_first_line(exc)})"  # the connection broke mid-transfer


def _endpoint(exc: BaseException) -> str:
    """The scheme and host:port botocore was talking to, if it says."""
    url = getattr(exc, "kwargs", {}).get("endpoint_url")
    if not isinstance(url, str):
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/" if parts.netloc else url


def _chain(exc: BaseException, *types: type[BaseException]) -> BaseException | None:
    """The first exception in `exc`'s cause/context chain (itself included) of `types`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, types):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["RemoteUnavailable", "describe"]
