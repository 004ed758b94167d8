"""Attacks on the remote run cache as a team meets it (issue 26 items 1, 2, 8): hostile or
mistyped remote URLs, Ctrl-C while a make waits for its uploads, a server that is down, on a
real S3-compatible server (moto's) on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.test_run_cache import PIPELINE, STEPS


@pytest.mark.parametrize("command", ["push", "pull"])
@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_remote_is_refused_not_the_project_root(project, cli, command, url):
    """`tipi cache push --remote "$TIPI_REMOTE"` in a job where the variable is empty (the
    fork recipe of docs/ci-cache.yml empties it) pushed the cache into the project's own
    root: objects/, runs/ and tmp/ beside pipelines/."""
    project.pipeline("rc", PIPELINE, steps=STEPS)
    assert cli("make").exit_code == 0
    result = cli("cache", command, "--remote", url)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: --remote is empty\nhint: ")
    assert "Traceback" not in result.stderr
    assert not {"objects", "runs", "tmp"} & {p.name for p in project.root.iterdir()}
