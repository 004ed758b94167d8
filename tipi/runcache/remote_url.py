"""A remote cache URL checked without importing its backend (s3fs costs a make 0.3 s)."""

from __future__ import annotations

import importlib.util

from tipi.errors import UsageError
from tipi.runcache.remote_io import OBJECT_STORES

INSTALL_HINT = (
    "install the fsspec backend for it: pip install 'tipi[s3]' for s3://, 'tipi[gcs]' for gs://"
)


def check_url(url: str) -> None:
    """Raise the UsageError that opening `url` as a remote cache would (an unknown protocol,
    a backend not installed, an object store without a bucket), at the cost of parsing it:
    a make opens its remote only when it first needs it, and must refuse a URL that can
    never work before its steps run, not in the middle. (A chained URL, `a::b`, is left to
    the opening.)

    Raises:
        UsageError: `url` cannot be a remote cache.
    """
    from fsspec.core import split_protocol
    from fsspec.registry import known_implementations, registry

    if "::" in url:
        return
    protocol, path = split_protocol(url)
    protocol = protocol or "file"
    if protocol not in registry:
        known = known_implementations.get(protocol)
        if known is None:
            message = f"Protocol not known: {protocol}"
            raise UsageError(f"cannot open the remote cache {url}: {message}", hint=INSTALL_HINT)
        package = str(known.get("class", "")).split(".")[0]
        if not package or importlib.util.find_spec(package) is None:
            message = known.get("err") or f"{package} is not installed"
            raise UsageError(f"cannot open the remote cache {url}: {message}", hint=INSTALL_HINT)
    if protocol in OBJECT_STORES and not path.strip("/").split("/")[0]:
        raise UsageError(
            f"the remote cache {url} names no bucket", hint="give one: s3://bucket/prefix"
        )


__all__ = ["INSTALL_HINT", "check_url"]
