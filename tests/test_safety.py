"""Attacks on names, paths, exits and bad bytes: each is exit 2 (or a failed step), never a lost
file outside what tipi made, never a traceback, never a hang."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# every test here starts processes (or takes seconds): not in the fast tier
pytestmark = pytest.mark.slow

STEPS = """
import os, sys, time
from pathlib import Path
from tipi import PipelineProcess

if os.environ.get("TIPI_TEST_SLOW_IMPORT"):
    Path("importing").write_text("now")
    time.sleep(30)


class Write(PipelineProcess):
    def __init__(self, controller, force: bool = False, text: str = "x", exit: str = "") -> None:
        super().__init__(controller, force)
        self.text, self.exit = text, exit

    def execute(self) -> None:
        if self.scratch_dir is not None:
            (self.scratch_dir / "checkpoint").write_text("half")
        for path in self.outputs.values():
            if path.suffix:
                path.write_text(self.text)
            else:
                path.mkdir()
                (path / "f.txt").write_text(self.text)
        if self.exit == "sys0":
            sys.exit(0)
        if self.exit == "sys3":
            sys.exit(3)
        if self.exit == "os":
            os._exit(4)
        if self.exit == "fork":  # a child that ends with os._exit, as DataLoader workers do
            import multiprocessing

            child = multiprocessing.get_context("fork").Process(target=print, args=("child",))
            child.start()
            child.join()
            assert child.exitcode == 0, child.exitcode


class Plant(PipelineProcess):
    def execute(self) -> None:
        os.symlink(os.environ["TIPI_TEST_SENTINEL"], "out/planted")
        self.outputs["out"].write_text("planted")
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project beside a sentinel folder, both fingerprinted before each attack."""
    project = tmp_path / "project"
    (project / "pipelines/p").mkdir(parents=True)
    (project / "pipelines/p/steps.py").write_text(STEPS)
    (project / "pipelines/p/pipeline.toml").write_text(
        '[processes.a]\ntype = "Write"\noutputs = { out = "out/a.txt" }\n'
    )
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret.txt").write_text("do not touch")
    monkeypatch.chdir(project)
    return Site(project, sentinel)


class Site:
    def __init__(self, root: Path, sentinel: Path) -> None:
        self.root, self.sentinel = root, sentinel
        self.sources = self.snapshot(root / "pipelines")
        self.guarded = self.snapshot(sentinel)

    @staticmethod
    def snapshot(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
        }

    def toml(self, text: str) -> None:
        (self.root / "pipelines/p/pipeline.toml").write_text(text)
        self.sources = self.snapshot(self.root / "pipelines")

    def tipi(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, "TIPI_TEST_SENTINEL": str(self.sentinel), **env}
        environment["COLUMNS"] = "200"
        return subprocess.run(
            [sys.executable, "-m", "tipi", *args],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def intact(self) -> None:
        assert self.snapshot(self.sentinel) == self.guarded
        assert self.snapshot(self.root / "pipelines") == self.sources


def one_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    if code == 2:  # a failed step (1) shows the user's frames; a usage error none
        assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    "name", ["../../..", "..", ".hidden", "a/b", "-rf", "", "a\\b", "über", "a b"]
)
def test_hostile_step_and_permanence_names_are_refused(site, name):
    site.toml(f'[processes."{name}"]\ntype = "Write"\noutputs = {{ out = "out/a.txt" }}\n')
    assert "is not a valid step name" in one_error(site.tipi("make"))
    site.toml(f'[permanences."{name}"]\ntype = "Device"\n')
    assert "is not a valid permanence name" in one_error(site.tipi("make"))
    site.intact()
    assert (site.root / "pipelines").is_dir()


@pytest.mark.parametrize("command", ["make", "clean", "status", "run"])
@pytest.mark.parametrize("name", ["../..", "../../..", "../../pipelines/p", "/etc", "p/../p"])
def test_a_pipeline_is_named_never_given_as_a_path(site, command, name):
    assert site.tipi("make").returncode == 0
    args = [command, name] if command == "run" else [command, "-p", name]
    assert "is not a pipeline name" in one_error(site.tipi(*args))
    site.intact()
    assert (site.root / "out/a.txt").exists()


def test_a_config_file_stays_inside_the_pipeline_folder(site):
    (site.root / "other.toml").write_text('[processes.b]\ntype = "Write"\n')
    (site.root / "pipelines/p/link.toml").symlink_to(site.root / "other.toml")
    for config in ("../../other.toml", str(site.root / "other.toml"), "link.toml"):
        assert "outside the pipeline folder" in one_error(site.tipi("make", "-c", config))
    site.intact()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        (".", "the project root"),
        ("", "the project root"),
        ("out/..", "the project root"),
        ("..", "outside the project root"),
        ("/tmp/elsewhere.txt", "outside the project root"),
        (".tipi_cache", "inside .tipi_cache/"),
        (".tipi_cache/pipelines/p/traces.log", "inside .tipi_cache/"),
        ("pipelines/p", "inside pipelines/"),
        ("pipelines/p/steps.py", "inside pipelines/"),
        ("pipelines", "inside pipelines/"),
        ("link/x.txt", "outside the project root"),
    ],
)
def test_outputs_that_would_replace_the_project_state_or_sources_are_refused(site, path, why):
    (site.root / "link").symlink_to(site.sentinel)
    site.toml(f'[processes.a]\ntype = "Write"\noutputs = {{ out = "{path}" }}\n')
    error = one_error(site.tipi("make"))
    assert "is not allowed" in error and why in error, error
    site.intact()


def test_outputs_inside_or_around_another_output_are_refused(site):
    site.toml(
        '[processes.a]\ntype = "Write"\noutputs = { out = "out/dir" }\n'
        '[processes.b]\ntype = "Write"\noutputs = { out = "out/dir/b.txt" }\n'
    )
    assert "lies inside output out/dir of step 'a'" in one_error(site.tipi("make"))


def test_a_symlink_planted_during_the_make_is_caught_before_anything_moves(site):
    """`plant` makes out/planted a link to the sentinel folder after the plan was checked;
    `b` writes out/planted/b.txt: the commit re-checks the path and refuses."""
    (site.root / "out").mkdir()
    site.toml(
        '[processes.plant]\ntype = "Plant"\noutputs = { out = "out/plant.txt" }\n'
        '[processes.b]\ntype = "Write"\nafter = ["plant"]\noutputs = { out = "out/planted/b.txt" }\n'
    )
    error = one_error(site.tipi("make"))
    assert "outside the project root" in error and "nothing was moved" in error
    assert not (site.sentinel / "b.txt").exists()
    site.intact()


def test_a_hostile_placeholder_is_refused(site):
    for template in (
        "{params.__init__.__globals__}",
        "{params.text.__class__}",
        "out/{params.text!r}",
        "out/{0}",
        "out/{name:>99}",
        "out/{params}",
    ):
        site.toml(f'[processes.a]\ntype = "Write"\noutputs = {{ out = "{template}" }}\n')
        assert "bad placeholder" in one_error(site.tipi("make")), template
    site.intact()


def test_clean_deletes_only_what_tipi_recorded_making(site):
    site.toml(
        '[processes.a]\ntype = "Write"\noutputs = { out = "out/a.txt" }\n'
        '[processes.d]\ntype = "Write"\noutputs = { out = "out/d" }\n'
    )
    assert site.tipi("make").returncode == 0
    (site.root / "out/mine.txt").write_text("a user's file")
    site.toml('[processes.a]\ntype = "Write"\noutputs = { out = "out/mine.txt" }\n')
    result = site.tipi("clean", "--outputs")  # the plan now names mine.txt; it was never made
    assert result.returncode == 0, result.stderr
    assert (site.root / "out/mine.txt").read_text() == "a user's file"
    assert not (site.root / "out/a.txt").exists() and not (site.root / "out/d").exists()
    assert not (site.root / ".tipi_cache").exists()
    site.intact()


@pytest.mark.parametrize("jobs", [[], ["-j", "2"]])
@pytest.mark.parametrize(
    ("exit", "called"), [("sys0", "sys.exit(0)"), ("sys3", "sys.exit(3)"), ("os", "os._exit(4)")]
)
def test_a_step_that_exits_has_failed(site, jobs, exit, called):
    site.toml(
        f'[processes.a]\ntype = "Write"\nparams = {{ exit = "{exit}" }}\n'
        'outputs = { out = "out/a.txt" }\n'
    )
    error = one_error(site.tipi("make", *jobs), code=1)
    assert f"step 'a' failed: RuntimeError: the step called {called}" in error
    assert not (site.root / "out/a.txt").exists()
    status = site.tipi("status", "--json")
    assert '"will-run"' in status.stdout


def test_a_child_process_of_a_step_still_exits(site):
    site.toml(
        '[processes.a]\ntype = "Write"\nparams = { exit = "fork" }\noutputs = { out = "out/a.txt" }\n'
    )
    result = site.tipi("make")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("planned", [False, True])
def test_a_signal_while_step_modules_import_stops_the_make(site, sig, planned):
    if planned:  # the plan is cached: modules are imported when the step is about to run
        assert site.tipi("make", "--no-run-cache").returncode == 0
        (site.root / "out/a.txt").unlink()
    environment = {**os.environ, "TIPI_TEST_SLOW_IMPORT": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tipi", "make", "--no-run-cache"],
        cwd=site.root,
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not (site.root / "importing").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (site.root / "out/a.txt").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[processes.a]\ntype = "Write"\n# \xff\xfe\n', "not UTF-8 text: byte 0xff"),
        (b"\x00\x01\x02binary\x00", "invalid TOML"),
        (
            b'[processes.a]\ntype = "Write"\nparams = { text = "x" }\nq = 99999999999999999999999\n',
            "does not fit in 64 bits",
        ),
        (
            b'[processes.a]\ntype = "Write"\nparams = { x = ' + b"[" * 40 + b"]" * 40 + b" }\n",
            "nested too deeply",
        ),
        (b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n", "nests arrays or tables too deeply"),
        (b"# " + b"x" * (9 * 1024 * 1024) + b"\n", "larger than 8 MiB"),
    ],
)
def test_bad_bytes_in_the_pipeline_file_are_one_line(site, content, message):
    (site.root / "pipelines/p/pipeline.toml").write_bytes(content)
    site.sources = site.snapshot(site.root / "pipelines")
    error = one_error(site.tipi("make"))
    assert message in error, error
    assert len(error.strip().splitlines()) <= 2, error
    site.intact()


def test_a_fifo_as_the_pipeline_file_does_not_hang(site):
    pipeline = site.root / "pipelines/p/pipeline.toml"
    pipeline.unlink()
    os.mkfifo(pipeline)
    result = site.tipi("make", timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


FUZZ_KEYS = st.sampled_from(
    ["type", "params", "inputs", "outputs", "after", "volatile", "force", "nproc", "resources", "x"]
)
FUZZ_TEXT = st.sampled_from(
    [
        "out/a.txt",
        ".",
        "..",
        "../x",
        "/etc/passwd",
        ".tipi_cache",
        "pipelines",
        "pipelines/p",
        "{name}",
        "{params.text}",
        "{params.__class__}",
        "{",
        "}",
        "out/{pipeline}/x",
        "",
        "Write",
        "Device",
        "Plant",
        "../../..",
        "out",
        "out/a.txt/b",
        "~/x",
        "link",
    ]
)
FUZZ_VALUES = st.recursive(
    st.one_of(
        FUZZ_TEXT.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
        st.integers(-(2**70), 2**70).map(str),
        st.booleans().map(lambda b: str(b).lower()),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(FUZZ_KEYS, inner, max_size=3).map(
            lambda d: "{ " + ", ".join(f"{k} = {v}" for k, v in d.items()) + " }"
        ),
    ),
    max_leaves=6,
)
FUZZ_NAMES = st.sampled_from(["a", "b", "../..", "x.y", "-", ".", "p", "out"])
FUZZ_TABLES = st.lists(
    st.tuples(
        st.sampled_from(["processes", "permanences", "pipeline", "other"]),
        FUZZ_NAMES,
        st.dictionaries(FUZZ_KEYS, FUZZ_VALUES, max_size=4),
    ),
    max_size=4,
)
FUZZ_ARGS = st.lists(
    st.sampled_from(
        [
            "make",
            "status",
            "clean",
            "run",
            "graph",
            "-p",
            "p",
            "../..",
            "-c",
            "../x.toml",
            "--outputs",
            "-f",
            "a",
            "-F",
            "-n",
            "--set",
            "a.text=../../x",
            "a.exit=os",
            "-j",
            "2",
            "out/a.txt",
            "--rehash",
            "--explain",
            "--json",
            "-k",
            "/etc",
        ]
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(tables=FUZZ_TABLES, args=FUZZ_ARGS)
def test_fuzzed_pipeline_files_and_arguments_never_crash_hang_or_escape(
    tmp_path_factory, tables, args
):
    root = tmp_path_factory.mktemp("fuzz")
    project = root / "project"
    (project / "pipelines/p").mkdir(parents=True)
    (project / "pipelines/p/steps.py").write_text(STEPS)
    lines = []
    for section, name, body in tables:
        header = f"[{section}]" if section == "pipeline" else f'[{section}."{name}"]'
        lines.append(header)
        lines += [f"{k} = {v}" for k, v in body.items()]
    (project / "pipelines/p/pipeline.toml").write_text("\n".join(lines) + "\n")
    sentinel = root / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret.txt").write_text("do not touch")
    (project / "link").symlink_to(sentinel)
    fuzz = Site(project, sentinel)
    result = fuzz.tipi(*args, timeout=120)
    assert result.returncode in (0, 1, 2), (args, result.stderr)
    assert "internal error" not in result.stderr, result.stderr
    fuzz.intact()


def test_an_input_that_is_a_fifo_or_a_device_is_never_read_by_tipi(site):
    os.mkfifo(site.root / "pipe")
    (site.root / "data").mkdir()
    os.mkfifo(site.root / "data/inner-pipe")
    site.toml(
        '[processes.a]\ntype = "Write"\ninputs = { p = "pipe", d = "data", z = "/dev/zero" }\n'
        'outputs = { out = "out/a.txt" }\n'
    )
    result = site.tipi("status", timeout=30)  # decides on every input without reading them
    assert result.returncode == 0, result.stderr
