"""Remote run cache latency: a make with an S3 remote vs the same make without one.

Against a real S3-compatible server on 127.0.0.1 (moto's, started here through
tests/s3_server.py), on generated pipelines of tiny file steps (a chain, or a fan-in: N-1
independent steps feeding one; the house style of engine_scale.py), it measures side by side,
each repetition in a fresh project so that every run is a first one:

* local first build: `tipi make -q`, no remote;
* remote first build: `tipi make --remote s3://<new empty bucket>/cache` (every step looked
  up on the remote, runs, and is pushed: checked);
* fresh clone: a new checkout with no `.tipi_cache/` against that bucket (every step restored
  from the remote, none run; checked).

With each, how many requests the server received (moto logs one line per request): what a
make costs the store, and on localhost what its time mostly measures.

Times are medians of REPEAT runs of the whole command (interpreter start included), the
baseline in the same invocation, the runs of one repetition one after another so that a change
of load on a shared machine falls on all three. The server adds a real HTTP round trip per
request (a few milliseconds of CPU: moto is a Python server), so on localhost the figures
measure how many requests a make sends more than how long it waits for them. `--latency-ms`
puts a proxy in front of the server that delays every byte by that round trip (half each
way), as a bucket in a cloud region would; the parallel requests are what hide it.
`--step-ms` gives each step that much work, done elsewhere (it sleeps, as a step waiting on a
GPU does): what the uploads can overlap with. Trivial steps (0) leave nothing to overlap.

Usage:
    .venv/bin/python benchmarks/remote.py [--sizes 30 50] [--shapes fanin chain] [--repeat 3]
        [--latency-ms 0] [--step-ms 0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from s3_server import S3Server, running_s3  # noqa: E402

TIPI = Path(sys.executable).parent / "tipi"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

STEPS_PY = """
import time

from tipi import PipelineProcess


class Touch(PipelineProcess):
    def __init__(self, controller, force: bool = False, i: int = 0, ms: int = 0) -> None:
        super().__init__(controller, force)
        self.i = i
        self.ms = ms

    def execute(self) -> None:
        time.sleep(self.ms / 1000)  # the step's work, done elsewhere (a GPU, a service)
        size = sum(len(p.read_bytes()) for p in self.inputs.values())
        self.outputs["out"].write_text(f"{self.i} {size}\\n")
"""


def inputs_of(shape: str, n: int, i: int) -> list[int]:
    if shape == "chain":
        return [i - 1] if i else []
    return list(range(n - 1)) if i == n - 1 else []


def write_project(root: Path, shape: str, n: int, ms: int = 0) -> None:
    folder = root / "pipelines" / "bench"
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS_PY)
    lines = []
    for i in range(n):
        ins = ", ".join(f'i{j} = "out/{j}.txt"' for j in inputs_of(shape, n, i))
        lines += [
            f"[processes.s{i}]",
            'type = "Touch"',
            f"params = {{ i = {i}, ms = {ms} }}",
            f"inputs = {{ {ins} }}",
            f'outputs = {{ out = "out/{i}.txt" }}',
            "",
        ]
    (folder / "pipeline.toml").write_text("\n".join(lines))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, standard output) of one command; a failure stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env={**ENV, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return wall, done.stdout + done.stderr


def requests(server: S3Server) -> int:
    """How many requests the server has logged so far (moto logs one line per request)."""
    lines = server.log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if " HTTP/1." in line)


def one_round(
    work: Path, server: S3Server, env: dict[str, str], shape: str, n: int, ms: int
) -> dict[str, float]:
    """One repetition: the local build, the remote build, the fresh clone (fresh folders)."""
    figures = {}
    with tempfile.TemporaryDirectory(prefix="remote-bench-", dir=work) as tmp:
        base = Path(tmp)
        for name in ("local", "remote", "clone"):
            write_project(base / name, shape, n, ms)
        figures["local"], _ = timed([str(TIPI), "make", "-q"], base / "local", env)
        remote = f"s3://{server.bucket()}/cache"
        make = [str(TIPI), "make", "--remote", remote]
        before = requests(server)
        figures["remote"], shown = timed(make, base / "remote", env)
        if f"pushed {n} run(s)" not in shown:
            raise RuntimeError(f"the remote build did not push its {n} runs:\n{shown[-1500:]}")
        middle = requests(server)
        figures["clone"], shown = timed(make, base / "clone", env)
        figures["remote requests"] = middle - before
        figures["clone requests"] = requests(server) - middle
        if f"done: {n} restored" not in shown:
            raise RuntimeError(f"the fresh clone did not restore all {n} steps:\n{shown[-1500:]}")
        for i in range(n):
            want = (base / "local" / "out" / f"{i}.txt").read_bytes()
            if (base / "clone" / "out" / f"{i}.txt").read_bytes() != want:
                raise RuntimeError(f"the fresh clone restored out/{i}.txt wrong")
    return figures


def bench(
    work: Path, server: S3Server, env: dict[str, str], shape: str, n: int, ms: int, repeat: int
) -> dict[str, float]:
    rounds = [one_round(work, server, env, shape, n, ms) for _ in range(repeat)]
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy `reader` to `writer`, each chunk `delay` seconds after it arrived (pipelined:
    a delay is latency, not a slower link)."""
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def send() -> None:
        while True:
            due, data = await chunks.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, data))
    chunks.put_nowait((0.0, b""))
    with contextlib.suppress(ConnectionError):
        await sender


@contextlib.contextmanager
def latency_proxy(target: int, round_trip: float) -> Iterator[int]:
    """A TCP proxy to 127.0.0.1:`target` adding `round_trip` seconds per request and
    answer (half each way), on a thread of this process; yields its port."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def connect(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(
            _pipe(client_r, server_w, round_trip / 2), _pipe(server_r, client_w, round_trip / 2)
        )

    async def serve() -> None:
        server = await asyncio.start_server(connect, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await server.serve_forever()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait()
    yield port[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 50])
    parser.add_argument("--shapes", nargs="+", default=["fanin", "chain"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--step-ms", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"{'shape':8} {'steps':>5} {'local s':>8} {'remote s':>9} {'ratio':>6} {'clone s':>8}"
        f" {'requests':>9} {'(clone)':>8}"
    )
    print("-" * 68)
    with (
        tempfile.TemporaryDirectory(prefix="s3-", dir=args.workdir) as logs,
        running_s3(Path(logs)) as server,
        latency_proxy(server.port, args.latency_ms / 1000) as port,
    ):
        env = dict(server.env)
        if args.latency_ms:
            env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        for shape in args.shapes:
            for n in args.sizes:
                f = bench(args.workdir, server, env, shape, n, args.step_ms, args.repeat)
                ratio = f["remote"] / f["local"]
                print(
                    f"{shape:8} {n:>5} {f['local']:>8.2f} {f['remote']:>9.2f} "
                    f"{ratio:>6.2f} {f['clone']:>8.2f} {f['remote requests']:>9.0f} "
                    f"{f['clone requests']:>8.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
