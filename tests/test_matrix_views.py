"""Step matrices in every view (issue 29 item 4): `status`, `graph`, `make --explain`, `runs`,
`show`, `diff` and the report fold a step's instances into `train ×6` with a count of their
states, unfold them when asked, and name the instance that would run and why.

In-process (CliRunner) on a tiny pipeline: train over seed x lr, evaluate paired with it,
a report gathering every evaluation. What a terminal and a browser show: test_matrix_views_screen.py.
"""

from __future__ import annotations

import json
import re

import pytest

PIPELINE = """
[processes.train]
type = "Train"
matrix = { seed = [0, 1, 2], lr = [0.001, 0.003] }
params = { seed = "{seed}", lr = "{lr}" }
outputs = { model = "out/train/{seed}/{lr}/model.txt" }

[processes.evaluate]
type = "Evaluate"
matrix = { seed = [0, 1, 2], lr = [0.001, 0.003] }
inputs = { model = "out/train/{seed}/{lr}/model.txt" }
outputs = { metrics = "out/evaluate/{seed}/{lr}/metrics.json" }

[processes.report]
type = "Report"
inputs = { metrics = "out/evaluate/{seed}/{lr}/metrics.json" }
outputs = { table = "out/report.txt" }
"""

STEPS = """
import json

from tipi import PipelineProcess


class Train(PipelineProcess):
    def __init__(self, controller, force: bool = False, seed: int = 0, lr: float = 0.1) -> None:
        super().__init__(controller, force)
        self.seed, self.lr = seed, lr

    def execute(self) -> None:
        self.outputs["model"].write_text(f"{self.seed} {self.lr}")


class Evaluate(PipelineProcess):
    metrics_outputs = ("metrics",)

    def execute(self) -> None:
        seed, lr = self.inputs["model"].read_text().split()
        self.outputs["metrics"].write_text(json.dumps({"accuracy": 0.9 + int(seed) / 100}))


class Report(PipelineProcess):
    def execute(self) -> None:
        self.outputs["table"].write_text("".join(p.read_text() for p in self.inputs.values()))
"""

SIX = [f"[seed={s},lr={lr}]" for s in (0, 1, 2) for lr in (0.001, 0.003)]


@pytest.fixture
def matrix(project, cli, monkeypatch):
    """The pipeline made once, then lr gets a third value: 3 new instances of each matrix."""
    monkeypatch.setenv("COLUMNS", "200")  # Rich's tables: no wrapping of the rows read here
    project.pipeline("demo", PIPELINE, steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    toml = project.root / "pipelines/demo/pipeline.toml"
    toml.write_text(toml.read_text().replace("lr = [0.001, 0.003]", "lr = [0.001, 0.003, 0.01]"))
    return project


def row(text: str, start: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(start)]
    return re.sub(r"\s+", " ", line)


def test_status_folds_a_matrix_into_one_row_with_a_count_of_states(matrix, cli):
    result = cli("status")
    assert result.exit_code == 0, result.stderr
    train = row(result.stdout, "train ×9")
    assert "◐ 6 up-to-date, 3 never-run" in train
    # which instance would run first and why, and that two more would
    assert "train[seed=0,lr=0.01]: new step: no record of an earlier run (+2 more)" in train
    assert "◐ 6 up-to-date, 3 never-run" in row(result.stdout, "evaluate ×9")
    # the gathering step has one reason for its three new inputs' producers, not three
    assert "upstream 'evaluate ×3' will run first" in row(result.stdout, "report")
    assert "train[seed=1,lr=0.001]" not in result.stdout  # folded


def test_status_unfolds_with_expand_and_explain_names_the_instances_that_would_run(matrix, cli):
    expanded = cli("status", "--expand").stdout
    assert "all 9" not in expanded
    for values in [*SIX, "[seed=0,lr=0.01]"]:
        assert f"  train{values} " in expanded and f"  evaluate{values} " in expanded
    assert "✔ up-to-date" in row(expanded, "  train[seed=1,lr=0.003]")
    assert "○ never-run" in row(expanded, "  train[seed=2,lr=0.01]")
    explained = cli("status", "--explain").stdout
    new = [line.split()[0] for line in explained.splitlines() if line.startswith("  ")]
    assert new == [f"{step}[seed={s},lr=0.01]" for step in ("train", "evaluate") for s in (0, 1, 2)]
    assert "new step: no record of an earlier run" in row(explained, "  train[seed=2,lr=0.01]")


def test_naming_a_matrix_as_a_target_unfolds_it(matrix, cli):
    result = cli("status", "train")
    assert result.exit_code == 0, result.stderr
    assert "train ×9" in result.stdout and "  train[seed=2,lr=0.003] " in result.stdout
    assert "report" not in result.stdout  # not needed by the target


def test_graph_draws_one_node_per_matrix_and_every_instance_when_expanded(matrix, cli):
    tree = cli("graph").stdout
    assert "◐ train ×9 [6 up-to-date, 3 never-run]: train[seed=0,lr=0.01]: new step" in tree
    assert "└─╼ ◐ evaluate ×9 [6 up-to-date, 3 never-run]" in tree
    assert "└─╼ → report [will-run]: upstream 'evaluate ×3' will run first" in tree
    assert len(tree.splitlines()) == 3
    expanded = cli("graph", "--expand").stdout
    assert "→ train[seed=0,lr=0.01] [never-run]" not in expanded  # state marks, not arrows
    assert "○ train[seed=0,lr=0.01] [never-run]" in expanded
    assert "✔ evaluate[seed=1,lr=0.003] [up-to-date]" in expanded
    dot = cli("graph", "--format", "dot").stdout
    assert '"train ×9" -> "evaluate ×9";' in dot and "peripheries=2" in dot
    assert "6 up-to-date, 3 never-run" in cli("graph", "--format", "mermaid").stdout
    nodes = json.loads(cli("graph", "--format", "json").stdout)["nodes"]  # scripts: all
    assert sum(n["step"] == "train" for n in nodes) == 9
    (node,) = [n for n in nodes if n["id"] == "train[seed=2,lr=0.01]"]
    assert node["state"] == "never-run"


def test_make_explain_names_each_instance_and_its_reason(matrix, cli):
    result = cli("make", "--explain")
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert "✔ train[seed=1,lr=0.01] ran" in err
    assert "✔ train[seed=1,lr=0.003]" not in err  # up to date: not run, not listed
    report = err[err.index("✔ report ran") :]
    assert "- new input out/evaluate/0/0.01/metrics.json (+2 more alike)" in report
    # the summary table: one row per matrix and outcome
    assert re.search(r"^train ×3\s+ran", err, re.M) and re.search(r"^evaluate ×3\s+ran", err, re.M)


def test_runs_show_and_diff_list_the_instances(matrix, cli):
    assert cli("make", "-q").exit_code == 0
    assert cli("make", "-q", "--set", "train.lr=0.5").exit_code == 0
    runs = cli("runs", "-n", "1").stdout
    # lr=0.5 makes each seed's three instances the same run: one ran, two were restored
    flat = re.sub(r"\s+", " ", runs)
    assert "train ×3" in row(runs, "2") and "restored: train ×6" in flat
    assert "train[seed" not in runs.split("params changed")[0]
    assert "train[seed=0,lr=0.001].lr 0.001→0.5" in runs  # params changed, then "+6 more"
    assert "evaluate ×9.accuracy 0.9…0.92" in flat  # a matrix's metric: lowest…highest
    show = cli("show").stdout
    assert "train ×9 (Train): 3 ran, 6 restored" in show
    assert "train[seed=2,lr=0.003] (Train): restored" in show
    assert "train[seed=2,lr=0.003].lr" in show
    diff = cli("diff").stdout
    for values in [*SIX, "[seed=0,lr=0.01]"]:
        assert f"train{values}.lr" in diff
    assert re.search(r"train\[seed=1,lr=0\.003\]\.lr\s+0\.003\s+0\.5", diff)
    # the same change in every instance is one row; --json keeps each
    assert cli("make", "-q", "--set", "train.lr=0.7").exit_code == 0
    diff = cli("diff").stdout
    assert re.search(r"^train ×9\.lr\s+0\.5\s+0\.7\s+\+0\.2", diff, re.M)
    assert "train[seed" not in diff.split("metric")[0]
    assert len(json.loads(cli("diff", "--json").stdout)["params"]) == 9


def test_the_report_draws_a_matrix_as_a_group(matrix, cli):
    assert cli("report", "-o", "report.html").exit_code == 0
    page = (matrix.root / "report.html").read_text()
    dag = page[page.index('<div id="dag">') : page.index("</div>")]
    assert dag.count('class="step group up-to-date mixed"') == 0
    assert dag.count('class="step group never-run mixed"') == 2  # train ×9, evaluate ×9
    assert 'data-step="train ×9"' in dag
    assert re.search(r'class="count up-to-date" data-count="6"', dag)
    assert re.search(r'class="count never-run" data-count="3"', dag)
    assert page.count('class="group-row"') == 2
    assert page.count('class="step-row instance-row"') == 18
    assert "6 up-to-date, 3 never-run" in page
    assert "19 steps (step matrices: train ×9, evaluate ×9): 12 up-to-date, 1 will-run" in page
    assert '<details id="instances"><summary>every instance (18 in 2 step matrices)' in page


def test_a_failed_instance_is_named_with_its_error(project, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    failing = STEPS.replace(
        '        self.outputs["model"].write_text(f"{self.seed} {self.lr}")',
        "        if self.seed == 2 and self.lr > 0.002:\n"
        '            raise ValueError("diverged")\n'
        '        self.outputs["model"].write_text(f"{self.seed} {self.lr}")',
    )
    project.pipeline("demo", PIPELINE, steps=failing)
    made = cli("make", "-k")
    assert made.exit_code == 1
    # the summary: the instances that ran as one row, the failed one on its own
    assert re.search(r"^train ×5\s+ran", made.stderr, re.M)
    assert re.search(r"^train\[seed=2,lr=0\.003\]\s+failed", made.stderr, re.M)
    train = row(cli("status").stdout, "train ×6")
    assert "◐ 5 up-to-date, 1 failed" in train
    assert "train[seed=2,lr=0.003]: last error: " in train and "diverged" in train
    assert "failed: train[seed=2,lr=0.003]" in re.sub(r"\s+", " ", cli("runs").stdout)
