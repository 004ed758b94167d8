"""Every config error: its message, the file/key/line it names, and exit code 2 via the CLI."""

from __future__ import annotations

import pytest

from tests.conftest import PIPELINE, STEPS
from tipi.config import load_pipeline, parse_override
from tipi.errors import ConfigError


def broken(project, old: str, new: str) -> None:
    project.pipeline("numbers", PIPELINE.replace(old, new), steps=STEPS)


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("old", "new", "expected", "hint"),
    [
        (
            "n = 4",
            'n = "four"',
            "pipeline.toml:7: processes.numbers.params.n: expected int, found 'four' (str)",
            "declared as `int`",
        ),
        (
            "n = 4",
            "nn = 4",
            "pipeline.toml:7: processes.numbers.params.nn: unknown param 'nn' for WriteNumbers",
            "did you mean 'n'?",
        ),
        (
            'type = "SumNumbers"',
            'type = "SumNumber"',
            "pipeline.toml:11: processes.total.type: unknown type 'SumNumber'",
            "did you mean 'SumNumbers'?",
        ),
        (
            'type = "SumNumbers"',
            'type = "Counter"',
            "pipeline.toml:11: processes.total.type: type 'Counter' is a permanence",
            "[permanences.",
        ),
        (
            "{ start = 0 }",
            "{ start = 0.5 }",
            "pipeline.toml:3: permanences.counter.params.start: expected int, found 0.5 (float)",
            "declared as `int`",
        ),
        ("n = 4", "n = 4 =", "pipeline.toml:7: invalid TOML", "toml.io"),
        (
            "[processes.total]\n",
            '[processes.total]\ntyp = "x"\n',
            "pipeline.toml:11: processes.total.typ: unknown key 'typ' in process 'total'",
            "did you mean 'type'?",
        ),
        (
            '[processes.total]\ntype = "SumNumbers"\n',
            "[processes.total]\n",
            "pipeline.toml:10: processes.total: missing 'type'",
            'type = "ClassName"',
        ),
        (
            "[permanences.counter]",
            "[permanence.counter]",
            "pipeline.toml:1: permanence: unknown key 'permanence' in a pipeline file",
            "did you mean 'permanences'?",
        ),
        (
            'outputs = { total = "out/total.txt" }',
            "outputs = { total = 3 }",
            "pipeline.toml:13: processes.total.outputs: 'outputs' must be a table",
            "out/data.pt",
        ),
        (
            'outputs = { total = "out/total.txt" }',
            'outputs = { total = "out/{params.x}.txt" }',
            "pipeline.toml:13: processes.total.outputs.total: bad placeholder",
            "{params.NAME}",
        ),
        (
            'inputs = { numbers = "out/numbers.txt" }',
            'inputs = { numbers = "out/numbers.txt" }\nafter = ["numbrs"]',
            "pipeline.toml:13: processes.total.after: 'after' names unknown step 'numbrs'",
            "did you mean 'numbers'?",
        ),
    ],
)
def test_config_errors_exit_2_with_one_line_naming_file_key_line(
    numbers_project, cli, old, new, expected, hint
):
    broken(numbers_project, old, new)
    result = cli("run", "numbers")
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = error_line(result)
    assert line.startswith("error: pipelines/numbers/"), line
    assert expected in line
    assert hint in result.stderr


def test_missing_required_param_lists_it(project, cli):
    project.pipeline(
        "p",
        """
        [processes.s]
        type = "Need"
        """,
        steps="""
        from tipi import PipelineProcess
        class Need(PipelineProcess):
            def __init__(self, controller, force=False, *, lr: float, epochs: int = 2):
                super().__init__(controller, force)
            def execute(self): pass
        """,
    )
    result = cli("run", "p")
    assert result.exit_code == 2
    assert (
        "pipeline.toml:1: processes.s: missing required param for Need: lr (float)"
        in error_line(result)
    )


def test_override_values_are_parsed_as_toml(numbers_project):
    assert parse_override("train.lr=0.01") == (["train", "lr"], 0.01)
    assert parse_override("train.layers=[1, 2]") == (["train", "layers"], [1, 2])
    assert parse_override("train.name=run1") == (["train", "name"], "run1")
    assert parse_override('train.opt.name="adam"') == (["train", "opt", "name"], "adam")


def test_override_changes_the_run(numbers_project, cli):
    result = cli("run", "numbers", "--set", "numbers.n=10")
    assert result.exit_code == 0, result.stderr
    assert numbers_project.read("out/total.txt") == str(sum(range(1, 11)))


def test_override_targets_permanences_and_explicit_sections(numbers_project):
    file = numbers_project.root / "pipelines/numbers/pipeline.toml"
    spec = load_pipeline(
        file,
        name="numbers",
        root=numbers_project.root,
        overrides=["counter.start=5", "processes.numbers.n=2"],
    )
    assert spec.permanences["counter"].params == {"start": 5}
    assert spec.processes["numbers"].params == {"n": 2}


@pytest.mark.parametrize(
    ("override", "message", "hint"),
    [
        (
            "numbrs.n=3",
            "override 'numbrs.n=3' names no step or permanence 'numbrs'",
            "did you mean 'numbers'?",
        ),
        ("numbers.n=abc", "--set numbers.n: expected int, found 'abc' (str)", "declared as `int`"),
        (
            "numbers.m=1",
            "--set numbers.m: unknown param 'm' for WriteNumbers",
            "accepted params: n",
        ),
        ("numbers", "bad override 'numbers'", "--set STEP.PARAM=VALUE"),
    ],
)
def test_override_errors(numbers_project, cli, override, message, hint):
    result = cli("run", "numbers", "--set", override)
    assert result.exit_code == 2
    assert message in error_line(result)
    assert hint in result.stderr


def test_ambiguous_override_asks_for_the_section(project):
    folder = project.pipeline(
        "p",
        """
        [permanences.data]
        type = "X"
        [processes.data]
        type = "Y"
        """,
    )
    with pytest.raises(ConfigError, match="ambiguous") as info:
        load_pipeline(folder / "pipeline.toml", name="p", root=project.root, overrides=["data.x=1"])
    assert "processes.data.x=1" in info.value.hint


def test_list_form_of_paths_and_interpolation(project):
    folder = project.pipeline(
        "interp",
        """
        [processes.s]
        type = "S"
        params = { size = 8 }
        inputs = ["data/raw.txt"]
        outputs = { model = "out/{pipeline}/{name}-{params.size}.pt" }
        """,
        steps="""
        from tipi import PipelineProcess
        class S(PipelineProcess):
            def __init__(self, controller, force=False, size: int = 1, tag: str = "x"):
                super().__init__(controller, force)
            def execute(self): pass
        """,
    )
    from tipi.config import resolve_pipeline

    spec = load_pipeline(folder / "pipeline.toml", name="interp", root=project.root)
    step = resolve_pipeline(spec).steps["s"]
    assert step.inputs == {"data/raw.txt": project.root / "data/raw.txt"}
    assert step.outputs == {"model": project.root / "out/interp/s-8.pt"}
    assert step.params == {"size": 8, "tag": "x"}


def test_unknown_pipeline_suggests_a_close_name(numbers_project, cli):
    result = cli("run", "numbrs")
    assert result.exit_code == 2
    assert "no pipeline 'numbrs'" in error_line(result)
    assert "did you mean 'numbers'?" in result.stderr


def test_alternative_config_file(numbers_project, cli):
    folder = numbers_project.root / "pipelines/numbers"
    (folder / "small.toml").write_text(PIPELINE.replace("n = 4", "n = 2"))
    result = cli("run", "numbers", "-c", "small.toml")
    assert result.exit_code == 0, result.stderr
    assert numbers_project.read("out/total.txt") == "3"
    result = cli("run", "numbers", "-c", "nope.toml")
    assert result.exit_code == 2
    assert "config file 'nope.toml' not found" in result.stderr


def test_outside_a_project_the_error_says_how_to_start(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    result = cli("run", "x")
    assert result.exit_code == 2
    assert "no tipi project here" in error_line(result)
    assert "tipi init NAME" in result.stderr


def test_class_attributes_declare_paths_and_toml_extends_them(project):
    folder = project.pipeline(
        "cls",
        """
        [processes.s]
        type = "S"
        outputs = { extra = "out/extra.txt", model = "out/override.pt" }
        """,
        steps="""
        from tipi import PipelineProcess
        class S(PipelineProcess):
            inputs = {"data": "data/{name}.csv"}
            outputs = {"model": "out/{pipeline}/model.pt"}
            def execute(self): pass
        """,
    )
    from tipi.config import resolve_pipeline

    step = resolve_pipeline(
        load_pipeline(folder / "pipeline.toml", name="cls", root=project.root)
    ).steps["s"]
    assert step.inputs == {"data": project.root / "data/s.csv"}
    assert step.outputs == {
        "model": project.root / "out/override.pt",
        "extra": project.root / "out/extra.txt",
    }


def test_path_params_are_rooted_at_the_project_but_fingerprinted_relative(project, monkeypatch):
    from tipi.engine import Engine

    project.pipeline(
        "p",
        """
        [permanences.net]
        type = "Network"
        params = { model = "mlp", checkpoint = "out/net.pt", device = "" }
        [permanences.files]
        type = "BasicLogger"
        params = { log_dir = "logs/p" }
        """,
    )
    (project.root / "elsewhere").mkdir()
    monkeypatch.chdir(project.root / "elsewhere")  # started from a subfolder
    engine = Engine("p")
    plan = engine.load()
    resolved = engine.planner.resolve()
    assert resolved.permanences["files"].params["log_dir"] == project.root / "logs/p"
    assert resolved.permanences["net"].params["checkpoint"] == project.root / "out/net.pt"
    assert plan.permanences["net"]["params"]["checkpoint"] == "out/net.pt"
