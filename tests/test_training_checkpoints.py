"""Train's files and data: checkpoints with the pipeline's metadata (read by Network and
Evaluate, bare state dicts too), the resume file, resuming without re-reading batches, the Data
permanence's loaders, and params mistakes and failed gates at the command line."""

from __future__ import annotations

import json

import pytest

from tests.training_helpers import PARTS, one_thread, tiny  # noqa: F401 - one_thread is autouse
from tipi.engine import Engine
from tipi.errors import ProcessFailure
from tipi.permanences.data import Data
from tipi.permanences.network import Network, read_checkpoint
from tipi.permanences.sampling import EpochSampler, build_loader, epoch_order
from tipi.permanences.zoo import small_cnn

PHASES = (
    tiny('epochs = 2\nbatch_size = 32\nphase = "base"')
    + """
[processes.more]
type = "Train"
inputs = { init = "out/c/fit/model.pt" }
params = { epochs = 1, batch_size = 32, freeze = ["features.*"] }

[processes.score]
type = "Evaluate"
inputs = { model = "out/c/more/best.pt", data = "splits.pt" }
"""
)


def test_checkpoints_carry_the_pipeline_metadata_and_load_weights_only(project):
    import torch

    project.pipeline("c", PHASES)
    data = Data("synthetic_images", {"n": 96}, device="")
    data.initialize()
    parts = {k: tuple(torch.stack(t) for t in zip(*v, strict=True)) for k, v in data.parts.items()}
    torch.save(parts, project.root / "splits.pt")
    Engine("c").make()
    raw = torch.load(project.root / "out/c/more/model.pt", weights_only=True)
    assert set(raw) == {"state_dict", "metadata"}
    _, first = read_checkpoint(project.root / "out/c/fit/model.pt")
    _, second = read_checkpoint(project.root / "out/c/more/model.pt")
    assert first["phase"] == {"index": 0, "name": "base"}
    assert second["phase"] == {"index": 1, "name": "more"}
    assert (first["kind"], first["step"], first["pipeline"], first["epoch"]) == (
        "last",
        "fit",
        "c",
        2,
    )
    assert second["global_step"] == first["global_step"] + 3  # counted on across phases
    assert first["params"]["batch_size"] == 32 and first["params"]["phase"] == "base"
    assert first["fingerprint"] and first["run_id"] == second["run_id"]
    assert set(first["metrics"]) >= {"train_loss", "val_loss", "val_accuracy"}
    assert [p["name"] for p in second["phases"]] == ["base", "more"]
    _, best = read_checkpoint(project.root / "out/c/fit/best.pt")
    assert best["kind"] == "best" and best["metrics"]["val_accuracy"] == best_score(project)
    # Network and Evaluate read Train's checkpoints and bare state dicts alike
    net = Network("small_cnn", {"width": 4}, device="")
    net.initialize()
    assert net.load(project.root / "out/c/more/best.pt")["step"] == "more"
    evaluated = json.loads(project.read("out/c/score/metrics.json"))
    torch.save(net.model.state_dict(), project.root / "bare.pt")
    project.pipeline("c", PHASES.replace("out/c/more/best.pt", "bare.pt"))
    Engine("c").make(["score"])
    bare = json.loads(project.read("out/c/score/metrics.json"))
    assert bare["accuracy"] == evaluated["accuracy"]


def best_score(project) -> float:
    return json.loads(project.read("out/c/fit/history.json"))["best_score"]


CRASHING = tiny(
    'epochs = 3\nbatch_size = 8\ncheckpoint_every = 2\ncallbacks = ["parts:CrashOnce"]\n'
    'optimizers = [{ params = ["1.*"], name = "AdamW", lr = 0.01 }, '
    '{ params = ["3.*"], name = "SGD", lr = 0.05, momentum = 0.9 }]',
    data='dataset = "parts:images", params = { n = 64, noise = 0.3 }',
    extra='outputs = { ema = "out/{pipeline}/{name}/ema.pt" }',
).replace('dataset = "synthetic_images", params = { n = 96 }, ', "")


def test_a_crashed_run_resumes_numpy_augmentation_and_all_to_the_same_weights(project, tmp_path):
    """The dataset draws noise from numpy's global generator in the main process: only a
    resume that puts numpy's state back ends with the uninterrupted run's weights."""
    import torch

    text = CRASHING.replace("checkpoint_every = 2", "checkpoint_every = 2\nema = 0.8")
    text = text.replace('model = "small_cnn"', 'model = "mlp"').replace(
        "{ width = 4 }", "{ hidden = 8, num_classes = 1 }"
    )
    text = text.replace(
        "epochs = 3", 'epochs = 3\nloss = "mse_loss"\ninput_key = "image"\ntarget_key = "label"'
    )
    project.pipeline("c", text, parts=PARTS)
    Engine("c").make()
    expected = {n: read_checkpoint(project.root / f"out/c/fit/{n}.pt")[0] for n in ("model", "ema")}
    (project.root / "crash.flag").touch()
    with pytest.raises(ProcessFailure, match="crashed on purpose"):
        Engine("c").make(force=["fit"])
    resume = project.root / ".tipi_cache/scratch/c/fit/resume.pt"
    saved = torch.load(resume, weights_only=True)
    assert set(saved) >= {"version", "model", "optimizers", "schedulers", "scaler", "ema"}
    assert set(saved) >= {"callbacks", "torch_rng", "cuda_rng", "numpy_rng", "python_rng", "state"}
    assert len(saved["optimizers"]) == 2 and saved["scaler"] is None  # no scaler on CPU
    assert (saved["state"]["epoch"], saved["state"]["batch"]) == (1, 2)
    resumed_run = Engine("c").make(force=["fit"], run_cache=False)
    assert [r.outcome for r in resumed_run.results] == ["ran"]
    for name, weights in expected.items():
        resumed = read_checkpoint(project.root / f"out/c/fit/{name}.pt")[0]
        for key in weights:
            assert torch.equal(resumed[key], weights[key]), (name, key)
    assert not resume.parent.exists()


def test_resuming_skips_batches_without_reading_them():
    import torch

    class Counting(torch.utils.data.Dataset):  # here: torch is imported by the tests that use it
        def __init__(self, n: int) -> None:
            self.reads: list[int] = []
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, index: int) -> torch.Tensor:
            self.reads.append(index)
            return torch.tensor([index])

    full = epoch_order(20, True, 5)
    dataset = Counting(20)
    sampler = EpochSampler(20, True, 0)
    sampler.set_epoch(5, start=12)  # resuming after three batches of 4
    loader = build_loader(dataset, 4, sampler)
    assert len(loader) == 2
    seen = [int(i) for batch in loader for i in batch]
    assert seen == full[12:] and dataset.reads == full[12:]
    plain = torch.utils.data.DataLoader(
        range(20), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    assert [int(i) for batch in plain for i in batch] == full  # a plain loop's order
    shard = [epoch_order(20, True, 5, (r, 3)) for r in range(3)]
    assert [len(part) for part in shard] == [7, 7, 7]  # padded to a multiple of 3
    assert {i for part in shard for i in part} == set(full)


@pytest.mark.slow
def test_data_loaders_as_configured_and_seeded_samples_independent_of_workers():
    import torch

    class Augmenting(torch.utils.data.Dataset):  # the loader's workers are forked: no pickling
        def __len__(self) -> int:
            return 12

        def __getitem__(self, index: int) -> torch.Tensor:
            return torch.rand(2) + index

    data = Data(
        "synthetic_images",
        {"n": 40},
        num_workers=2,
        persistent_workers=True,
        batch_size=4,
        device="",
    )
    data.initialize()
    loader = data.loader("train")
    assert (loader.num_workers, loader.persistent_workers, loader.pin_memory) == (2, True, False)
    assert len(list(loader)) == 8
    drawn = []
    for workers in (0, 2):
        sampler = EpochSampler(12, True, 3, tag=True)
        sampler.set_epoch(3, start=4)
        drawn.append(torch.cat(list(build_loader(Augmenting(), 4, sampler, num_workers=workers))))
        state = torch.get_rng_state()
        assert torch.equal(state, torch.get_rng_state())  # the main generator is untouched
    assert torch.equal(drawn[0], drawn[1])


def test_params_mistakes_are_one_line_with_the_step_and_key(project, cli):
    bad = tiny('epochs = 1\nuntil = { metric = "train_loss", below = 0.5, mode = "gat" }')
    project.pipeline("c", bad)
    result = cli("make", "-p", "c")
    assert result.exit_code == 2
    assert (
        "processes.fit.params.until.mode: expected 'stop' or 'gate', found 'gat'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    project.pipeline("c", tiny('epochs = 1\nmonitor = "val_acc"'))
    result = cli("make", "-p", "c")
    assert result.exit_code == 2
    assert "processes.fit.params.monitor: monitor 'val_acc' is not a metric" in result.stderr
    assert "did you mean 'val_accuracy'" in result.stderr
    project.pipeline("c", tiny('epochs = 1\nuntil = { metric = "train_loss", below = nan }'))
    result = cli("make", "-p", "c")
    assert result.exit_code == 2
    assert "until.below: expected a finite number, found nan" in result.stderr


def test_a_gate_not_passed_fails_the_phase_with_the_best_value(project, cli):
    gate = 'epochs = 2\nbatch_size = 32\nuntil = { metric = "val_loss", below = 0.0001, mode = "gate" }'
    project.pipeline(
        "c",
        tiny(gate)
        + '\n[processes.after]\ntype = "Train"\ninputs = { init = "out/c/fit/model.pt" }\n',
    )
    result = cli("make", "-p", "c")
    assert result.exit_code == 1
    assert (
        "phase 'fit' did not pass its gate: val_loss never went below 0.0001 in 2 epochs"
        in result.stderr
    )
    assert "(best " in result.stderr and "at epoch" in result.stderr
    assert not (project.root / "out/c/after/model.pt").exists()
    assert "Traceback" not in result.stderr


def test_a_step_without_init_starts_from_the_built_weights(project):
    """Two phases on one Network, the second without `init`: it must not start from what
    the first left in the shared model (a cached first phase would not leave it)."""
    import torch

    text = tiny("epochs = 1\nbatch_size = 32") + (
        '\n[processes.again]\ntype = "Train"\nafter = ["fit"]\nparams = { epochs = 1, batch_size = 32 }\n'
    )
    project.pipeline("c", text)
    Engine("c").make()
    first = read_checkpoint(project.root / "out/c/fit/model.pt")[0]
    second = read_checkpoint(project.root / "out/c/again/model.pt")[0]
    torch.manual_seed(0)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(
        first["classifier.1.weight"], small_cnn(width=4).state_dict()["classifier.1.weight"]
    )


NO_GPU = "no CUDA GPU here: the CUDA RNG and the fp16 grad scaler are tested where one is lent"


def test_cuda_rng_states_are_saved_and_put_back():
    import torch

    from tipi.processes.training.checkpoints import restore_rng, rng_states

    if not torch.cuda.is_available():  # asked here, not at collection: torch is imported lazily
        pytest.skip(NO_GPU)

    saved = rng_states()
    assert len(saved["cuda_rng"]) == torch.cuda.device_count()
    first = torch.rand(4, device="cuda")
    assert restore_rng(saved) is None
    assert torch.equal(torch.rand(4, device="cuda"), first)


def test_a_crashed_16_mixed_run_on_cuda_resumes_with_its_grad_scaler(project):
    import torch

    if not torch.cuda.is_available():
        pytest.skip(NO_GPU)
    text = tiny(
        'epochs = 3\nbatch_size = 8\ncheckpoint_every = 2\nprecision = "16-mixed"\n'
        'deterministic = true\ncallbacks = ["parts:CrashOnce"]',
        model="mlp",
        model_params="{ hidden = 32 }",
    )
    project.pipeline("c", text, parts=PARTS)
    Engine("c").make()
    expected = read_checkpoint(project.root / "out/c/fit/model.pt")[0]
    (project.root / "crash.flag").touch()
    with pytest.raises(ProcessFailure, match="crashed on purpose"):
        Engine("c").make(force=["fit"])
    saved = torch.load(project.root / ".tipi_cache/scratch/c/fit/resume.pt", weights_only=True)
    assert saved["scaler"]["scale"] > 0 and len(saved["cuda_rng"]) == torch.cuda.device_count()
    Engine("c").make(force=["fit"], run_cache=False)
    resumed = read_checkpoint(project.root / "out/c/fit/model.pt")[0]
    for key in expected:  # deterministic algorithms: the same sums in the same order
        assert torch.equal(resumed[key], expected[key]), key
