"""`tipi clean --outputs` deletes only what tipi made (attack report, item 2): an output whose
bytes are no longer those its trace recorded after the run (a user's own file put at the path
of a matrix instance no longer planned, or an output edited by hand) is kept, and clean says
so; folders are compared by their recorded digest the same way."""

from __future__ import annotations

STEPS = """
from tipi import PipelineProcess


class Train(PipelineProcess):
    def __init__(self, controller, force: bool = False, seed: int = 0) -> None:
        super().__init__(controller, force)
        self.seed = seed

    def execute(self):
        self.outputs["model"].write_text(f"seed {self.seed}")


class Folder(PipelineProcess):
    def execute(self):
        self.outputs["dir"].mkdir()
        (self.outputs["dir"] / "a.txt").write_text("a")
"""

PIPELINE = """
[processes.train]
type = "Train"
matrix = { seed = [0, 1] }
params = { seed = "{seed}" }
outputs = { model = "out/train/{seed}/model.txt" }

[processes.folder]
type = "Folder"
outputs = { dir = "out/folder" }
"""


def test_a_file_put_where_a_removed_instance_wrote_is_kept(project, cli):
    folder = project.pipeline("demo", PIPELINE, steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    toml = folder / "pipeline.toml"
    toml.write_text(toml.read_text().replace("seed = [0, 1]", "seed = [0]"))
    assert cli("make", "-q").exit_code == 0
    mine = project.root / "out/train/1/model.txt"
    mine.write_text("MY HAND-MADE MODEL")
    result = cli("clean", "--outputs")
    assert result.exit_code == 0
    assert "kept out/train/1/model.txt (changed since tipi made it)" in result.stdout
    assert mine.read_text() == "MY HAND-MADE MODEL"
    assert "removed out/train/0/model.txt" in result.stdout
    assert not (project.root / "out/train/0").exists()
    assert "removed out/folder" in result.stdout and not (project.root / "out/folder").exists()


def test_an_edited_output_and_folder_are_kept_the_unchanged_go(project, cli):
    project.pipeline("demo", PIPELINE, steps=STEPS)
    assert cli("make", "-q").exit_code == 0
    (project.root / "out/train/0/model.txt").write_text("edited")
    (project.root / "out/folder/b.txt").write_text("added by hand")
    result = cli("clean", "--outputs")
    assert result.exit_code == 0
    assert "kept out/train/0/model.txt (changed since tipi made it)" in result.stdout
    assert "kept out/folder (changed since tipi made it)" in result.stdout
    assert project.read("out/folder/b.txt") == "added by hand"
    assert project.read("out/folder/a.txt") == "a"
    assert not (project.root / "out/train/1").exists()  # unchanged: removed, folder pruned
