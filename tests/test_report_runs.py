"""What `tipi report` shows of the runs: each run's curves from its own logger folder (never
joined with another run's), a restored step's curves from the run that ran it, the outputs in
place from the run that made them, `--runs` overlays; and the page in headless Chromium."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from tipi.cli.experiments import build
from tipi.cli.logged import curves, figures, from_logs, logged_runs, read_folder
from tipi.cli.sources import Runs, same_params
from tipi.errors import UsageError
from tipi.report.experiments import COMPARE, IN_PLACE
from tipi.report.html import to_html
from tipi.report.views import PipelineView, StepView
from tipi.runs.record import RunRecord, StepRun

A, B, C = "20260101-100000-aaaaaa", "20260101-110000-bbbbbb", "20260101-120000-cccccc"
TRAIN = {"lr": 0.003, "epochs": 3}
FAST = {"lr": 0.01, "epochs": 3}
EVALUATE = {"part": "test"}


def png(width: int = 4, height: int = 3) -> bytes:
    """A small valid PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + b"\x80\x40\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def log_run(log_dir: Path, run: str, losses: list[float], params: dict, pipeline="digits"):
    """What a BasicLogger writes for a make that ran train (an epoch per loss) and evaluate."""
    folder = log_dir / pipeline / run
    (folder / "figures").mkdir(parents=True)
    lines = [
        {
            "run": run,
            "step_name": "train",
            "step": e,
            "time": 1.0,
            "epoch": e,
            "train_loss": loss,
            "val_loss": loss + 0.05,
            "val_accuracy": 1 - loss / 2,
        }
        for e, loss in enumerate(losses, 1)
    ]
    end = len(losses) + 1
    lines.append(
        {
            "run": run,
            "step_name": "evaluate",
            "step": end,
            "time": 2.0,
            "test_accuracy": 1 - losses[-1] / 2,
        }
    )
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"run": "half a li'
    (folder / "metrics.jsonl").write_text(text)
    (folder / "hparams.json").write_text(
        json.dumps(
            {
                "run": run,
                "pipeline": pipeline,
                "steps": {
                    "train": {
                        "type": "Train",
                        "params": params,
                        "metrics": {"train_loss": losses[-1], "epoch": len(losses)},
                    },
                    "evaluate": {
                        "type": "Evaluate",
                        "params": EVALUATE,
                        "metrics": {"test_accuracy": 1 - losses[-1] / 2},
                    },
                },
            }
        )
    )
    (folder / "figures" / f"confusion_matrix_{end}.png").write_bytes(png())


def record(run: str, started: float, **steps: tuple[str | None, dict]) -> RunRecord:
    return RunRecord(
        run,
        "digits",
        started,
        status="ok",
        ended=started + 5,
        commit="0123456789ab",
        dirty=False,
        steps={
            name: StepRun(
                type=name.title(),
                params=params,
                outcome=outcome,
                metrics={"accuracy": 0.9} if name == "evaluate" and outcome else {},
            )
            for name, (outcome, params) in steps.items()
        },
    )


PIPELINE = PipelineView(
    "digits",
    tuple(
        StepView(name, name.title(), "up-to-date", ("up to date",), outputs=outputs)
        for name, outputs in (
            ("prepare", ("data/splits.pt",)),
            ("train", ("out/train/best.pt",)),
            ("evaluate", ("out/evaluate/metrics.json",)),
        )
    ),
    (("prepare", "train"), ("train", "evaluate"), ("prepare", "evaluate")),
)


PREDS = {"prepare": [], "train": ["prepare"], "evaluate": ["prepare", "train"]}


@pytest.fixture
def three_runs(tmp_path) -> tuple[Runs, Path]:
    """A ran everything (lr 0.003); B ran train and evaluate with lr 0.01; C set lr back to
    0.003 and restored train and evaluate from the run cache (A's outputs)."""
    log_dir = tmp_path / "logs"
    log_run(log_dir, A, [1.9, 1.1, 0.7], TRAIN)
    log_run(log_dir, B, [1.5, 0.4, 0.2], FAST)
    records = {
        A: record(
            A, 100.0, prepare=("ran", {"seed": 0}), train=("ran", TRAIN), evaluate=("ran", EVALUATE)
        ),
        B: record(
            B, 200.0, prepare=(None, {"seed": 0}), train=("ran", FAST), evaluate=("ran", EVALUATE)
        ),
        C: record(
            C,
            300.0,
            prepare=(None, {"seed": 0}),
            train=("restored", TRAIN),
            evaluate=("restored", EVALUATE),
        ),
    }
    traces = {"prepare": {"seed": 0}, "train": TRAIN, "evaluate": EVALUATE}
    (tmp_path / "out/evaluate").mkdir(parents=True)
    (tmp_path / "out/evaluate/metrics.json").write_text(
        json.dumps({"accuracy": 0.9, "confusion_matrix": [[3, 1], [0, 4]]})
    )
    return Runs(records, logged_runs([log_dir], "digits"), traces, PREDS), tmp_path


def test_each_run_has_its_own_curves_never_joined(three_runs):
    runs, _ = three_runs
    loss = {c.metric: c for c in curves(runs.logged[B], "train")}["train_loss"]
    assert loss.points == ((1, 1.5), (2, 0.4), (3, 0.2))  # B's three epochs, not six
    assert loss.x_label == "epoch" and loss.family == "loss" and loss.split == "train"
    assert [c.metric for c in curves(runs.logged[B], "evaluate")] == ["test_accuracy"]
    assert curves(runs.logged[B], "evaluate")[0].x_label == "step"


def test_a_figure_belongs_to_the_step_that_logged_last_before_it(three_runs):
    runs, _ = three_runs
    assert [f.name for f in figures(runs.logged[A], "evaluate")] == ["confusion_matrix"]
    assert figures(runs.logged[A], "train") == []
    assert figures(runs.logged[A], "evaluate")[0].uri.startswith("data:image/png;base64,iVBOR")


def test_a_restored_step_shows_the_curves_of_the_run_that_ran_it(three_runs):
    runs, root = three_runs
    assert runs.source(C, "train") == A  # B ran train too, with another lr
    assert runs.source(C, "evaluate") == A  # B ran it with the same params, on B's model
    assert runs.source(B, "train") == B
    experiments = build(runs, PIPELINE, [], root)
    c = experiments.view(C)
    assert [cv.points for cv in c.curves[C]] == [cv.points for cv in experiments.view(A).curves[A]]
    assert any(f"curves are those of run {A}" in note for note in c.notes)
    assert [f.name for f in c.figures] == ["confusion_matrix"]


def test_the_outputs_in_place_are_shown_first_with_the_run_that_made_them(three_runs):
    runs, root = three_runs
    assert {s.name: runs.in_place(s.name) for s in PIPELINE.steps} == dict.fromkeys(
        ("prepare", "train", "evaluate"), A
    )
    bare = Runs(runs.records, runs.logged, runs.traces)  # build finds the steps' inputs
    experiments = build(bare, PIPELINE, [], root)
    assert experiments.selected == A  # one run made every output in place: its view
    assert experiments.view(A).title == f"run {A} (outputs in place)"
    assert IN_PLACE not in [v.id for v in experiments.views]


def test_outputs_made_by_several_runs_get_a_view_of_their_own(three_runs):
    runs, root = three_runs
    runs.traces["train"] = FAST  # train's outputs are B's now, prepare's still A's
    experiments = build(runs, PIPELINE, [], root)
    assert experiments.selected == IN_PLACE
    current = experiments.view(IN_PLACE)
    assert current.runs == [A, B]
    loss = next(c for c in current.curves[IN_PLACE] if c.metric == "train_loss")
    assert loss.points[0] == (1, 1.5)  # B's
    assert current.params[IN_PLACE]["train.lr"] == 0.01  # the params of the outputs there
    assert current.confusion == [[3, 1], [0, 4]]  # read from the metrics output in place


def test_runs_named_with_runs_are_overlaid(three_runs):
    runs, root = three_runs
    experiments = build(runs, PIPELINE, ["aaaaaa", B[:15] + "-b"], root)
    assert experiments.selected == COMPARE
    compare = experiments.view(COMPARE)
    assert list(compare.curves) == [A, B] and compare.runs == [A, B]
    assert compare.params[A]["train.lr"] == 0.003 and compare.params[B]["train.lr"] == 0.01
    one = build(runs, PIPELINE, [B], root)
    assert one.selected == B


def test_by_default_the_runs_that_logged_are_overlaid(three_runs):
    runs, root = three_runs
    experiments = build(runs, PIPELINE, [], root)
    assert experiments.view(COMPARE).runs == [B, A]  # C logged nothing: it restored


@pytest.mark.parametrize(("ref", "error"), [("2026", "ambiguous"), ("zzz", "no run")])
def test_a_run_that_is_not_one_is_a_usage_error(three_runs, ref, error):
    runs, root = three_runs
    with pytest.raises(UsageError, match=error):
        build(runs, PIPELINE, [ref], root)


def test_the_runs_table_is_that_of_tipi_runs(three_runs):
    runs, root = three_runs
    rows = {row.id: row for row in build(runs, PIPELINE, [], root).rows}
    assert list(rows) == [C, B, A]
    assert rows[B].changed == "train.lr 0.003→0.01"
    assert rows[C].changed == "train.lr 0.01→0.003"
    assert rows[C].ran == "restored: train, evaluate"
    assert rows[A].ran == "prepare, train, evaluate" and rows[A].changed == "-"
    assert rows[A].commit == "01234567" and rows[A].status == "ok"
    assert rows[A].metrics == "evaluate.accuracy 0.9"


def test_without_run_records_the_loggers_folders_are_the_runs(three_runs):
    runs, root = three_runs
    runs = Runs({}, runs.logged, runs.traces, PREDS)
    assert runs.ids == [B, A]
    made_up = from_logs(runs.logged[A])
    assert made_up.steps["train"].params == TRAIN and made_up.status == "logged"
    assert made_up.steps["train"].logged == {"train_loss": 0.7}  # epoch is not a metric
    assert runs.in_place("train") == A  # matched by the params hparams.json keeps
    experiments = build(runs, PIPELINE, [], root)
    assert experiments.view(A).title.endswith("(outputs in place)")


def test_params_compare_on_the_params_both_name():
    assert same_params({"lr": 0.01, "x": [1]}, {"lr": 0.01, "x": [1], "extra": 2}) is True
    assert same_params({"lr": 0.01}, {"lr": 0.02}) is False
    assert same_params({}, {"lr": 0.02}) is None


def test_another_pipelines_run_and_damaged_files_are_left_out(tmp_path):
    log_run(tmp_path, A, [1.0, 0.5], TRAIN, pipeline="other")
    (tmp_path / B).mkdir()
    (tmp_path / B / "metrics.jsonl").write_text("not json\n[1, 2]\n")
    (tmp_path / B / "hparams.json").write_text('{"pipeline": "other"}')
    assert logged_runs([tmp_path], "digits") == {}
    broken = read_folder(tmp_path / "other" / A)
    assert len(broken.rows["train"]) == 2  # the half-written last line is skipped


@pytest.mark.slow
def test_the_page_shows_the_picker_the_views_and_their_tables(three_runs, tmp_path):
    runs, root = three_runs
    page = to_html(PIPELINE, experiments=build(runs, PIPELINE, [A, B], root))
    assert page.count('<section class="run-view"') == 4  # compare, A, B, C
    assert page.count(" hidden>") == 3  # only the picked one shows, even without script
    assert '<select id="run-picker">' in page and f'value="{COMPARE}"' in page
    assert 'class="params"' in page and 'class="metrics"' in page and 'id="runs"' in page
    assert 'data-metric="loss"' in page and 'data-figure="confusion_matrix"' in page


@pytest.mark.slow
def test_the_picker_shows_the_view_the_address_names_in_chromium(three_runs, tmp_path):
    from tests.browser import dump_dom

    runs, root = three_runs
    page = tmp_path / "report.html"
    page.write_text(to_html(PIPELINE, experiments=build(runs, PIPELINE, [], root)))
    dom = dump_dom(page)
    assert f'<section class="run-view" data-view="{A}">' in dom  # the outputs in place
    assert dom.count('<section class="run-view"') == 4
    assert dom.count('class="run-view" data-view=') - dom.count('" hidden="">') == 1
    import subprocess

    from tests.browser import chromium

    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            "--virtual-time-budget=10000",
            f"{page.as_uri()}#view={B}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f'<section class="run-view" data-view="{B}">' in done.stdout
    assert f'<section class="run-view" data-view="{A}" hidden="">' in done.stdout
    assert f'<tr data-run="{B}" class="picked">' in done.stdout
