"""Defaults for an S3 remote that the user did not set: a dead store fails in seconds.

botocore's own default ("legacy" retries: 5 attempts with growing pauses) makes a make wait
about 4 s for a refused connection, and s3fs waits 5 s for each connection that gets no
answer, before tipi can say the remote is down and go on without it. A remote cache is worth
only the time it saves, so unless the user chose otherwise tipi asks botocore for its
"standard" retries (3 attempts in all, with jittered pauses: a refused connection costs about
2 s, throttling and dropped connections are still retried), a 3 s connect timeout and a 10 s
read timeout (s3fs's 15 s, times s3fs's own 5 retries of a timed-out request, times botocore's
attempts, held a make for minutes against a store that accepts connections and never answers:
a stuck proxy); s3fs's own retries are left to botocore (`S3_RETRIES`: one try at its level).

What the user sets always wins: `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` (or `retry_mode` /
`max_attempts` in the AWS profile), and fsspec's configuration of s3
(`FSSPEC_S3='{"config_kwargs": {"retries": ..., "connect_timeout": ..., "read_timeout": ...}}'`,
or the same in fsspec's config files).
"""

from __future__ import annotations

import os
from typing import Any

S3_PROTOCOLS = ("s3", "s3a")
RETRIES = {"mode": "standard"}  # 3 attempts unless AWS_MAX_ATTEMPTS says otherwise
CONNECT_TIMEOUT = 3  # seconds; a store that answers at all answers in milliseconds
# seconds without a byte from the store, once a request is sent: a big upload's or download's
# duration is not bounded by it, only a silence
READ_TIMEOUT = 10
S3_RETRIES = 1  # s3fs's retries around botocore's (which already retries what is worth it)


def storage_options(url: str) -> dict[str, Any]:
    """Keyword arguments for fsspec's file system of `url`: the user's fsspec configuration
    for it with tipi's defaults under it (none unless it is an S3 URL)."""
    protocol = url.split("://", 1)[0] if "://" in url else ""
    if protocol not in S3_PROTOCOLS:
        return {}
    import fsspec.config

    # fsspec merges its configuration into explicit arguments one level deep only: the
    # user's config_kwargs must be merged here, or ours would replace them.
    configured: dict[str, Any] = {}
    for name in S3_PROTOCOLS:
        configured.update(fsspec.config.conf.get(name, {}).get("config_kwargs") or {})
    defaults: dict[str, Any] = {}
    if "connect_timeout" not in configured:
        defaults["connect_timeout"] = CONNECT_TIMEOUT
    if "read_timeout" not in configured:
        defaults["read_timeout"] = READ_TIMEOUT
    if "retries" not in configured and not _retries_set_for_botocore():
        defaults["retries"] = dict(RETRIES)
    if not defaults:
        return {}
    return {"config_kwargs": {**defaults, **configured}}


def _retries_set_for_botocore() -> bool:
    """Whether the environment or the AWS profile says how botocore retries."""
    if os.environ.get("AWS_RETRY_MODE") or os.environ.get("AWS_MAX_ATTEMPTS"):
        return True
    try:
        import botocore.session

        profile = botocore.session.Session().get_scoped_config()
    except Exception:  # no botocore, a broken config file: botocore itself will say so
        return True  # (and then tipi leaves botocore to its own rules)
    return "retry_mode" in profile or "max_attempts" in profile


def limit_own_retries(fs: Any, url: str) -> None:
    """One try at s3fs's level (its class default is 5, around botocore's own retries),
    unless the user's fsspec configuration of s3 says `retries`."""
    protocol = url.split("://", 1)[0] if "://" in url else ""
    if protocol not in S3_PROTOCOLS or not hasattr(fs, "retries"):
        return
    import fsspec.config

    if not any("retries" in (fsspec.config.conf.get(n) or {}) for n in S3_PROTOCOLS):
        fs.retries = S3_RETRIES


__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "RETRIES", "limit_own_retries", "storage_options"]
