"""Type resolution: local classes, built-ins, dotted paths, and the errors for each."""

from __future__ import annotations

import pytest

from tipi import Permanence, PipelineProcess
from tipi.errors import DefinitionError
from tipi.registry import Registry

LOCAL = """
from tipi import Permanence, PipelineProcess
from .helpers import SCALE


class Thing(Permanence):
    def cleanup(self) -> None:
        pass


class Step(PipelineProcess):
    scale = SCALE

    def execute(self) -> None:
        pass
"""


def test_local_classes_are_found_and_siblings_import_relatively(project):
    folder = project.pipeline("p", "", steps=LOCAL, helpers="SCALE = 3\n")
    registry = Registry(folder, project.root)
    assert registry.resolve("Thing", Permanence).__name__ == "Thing"
    step = registry.resolve("Step", PipelineProcess)
    assert step.scale == 3
    assert {"Thing", "Step"} <= set(registry.names())


def test_same_file_names_in_two_pipelines_do_not_collide(project):
    a = project.pipeline("a", "", steps=LOCAL, helpers="SCALE = 1\n")
    b = project.pipeline("b", "", steps=LOCAL, helpers="SCALE = 2\n")
    assert Registry(a, project.root).resolve("Step", PipelineProcess).scale == 1
    assert Registry(b, project.root).resolve("Step", PipelineProcess).scale == 2


def test_dotted_path_resolves_against_the_project_root(project):
    package = project.root / "mylib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "parts.py").write_text(LOCAL.replace("from .helpers import SCALE", "SCALE = 9"))
    registry = Registry(None, project.root)
    assert registry.resolve("mylib.parts:Step", PipelineProcess).scale == 9


def test_builtin_names_are_imported_lazily(project):
    registry = Registry(None, project.root, builtins={"Runner": "tipi.engine:PipelineRunner"})
    assert "Runner" in registry.names()
    with pytest.raises(DefinitionError, match="is a PipelineRunner object|is a type object"):
        registry.resolve("Runner", PipelineProcess)


def test_unknown_name_suggests_close_matches(project):
    folder = project.pipeline("p", "", steps=LOCAL, helpers="SCALE = 3\n")
    with pytest.raises(DefinitionError) as info:
        Registry(folder, project.root).resolve("Thng", Permanence)
    assert info.value.hint == "did you mean 'Thing'?"


def test_wrong_kind_is_rejected_with_where_it_belongs(project):
    folder = project.pipeline("p", "", steps=LOCAL, helpers="SCALE = 3\n")
    with pytest.raises(DefinitionError, match="is a permanence, but a process"):
        Registry(folder, project.root).resolve("Thing", PipelineProcess)


def test_bad_dotted_paths(project):
    registry = Registry(None, project.root)
    with pytest.raises(DefinitionError, match="cannot import module 'nope.mod'"):
        registry.resolve("nope.mod:X", PipelineProcess)
    with pytest.raises(DefinitionError, match="has no attribute 'Pipelineprocess'") as info:
        registry.resolve("tipi:Pipelineprocess", PipelineProcess)
    assert "PipelineProcess" in info.value.hint


def test_syntax_error_in_a_local_file_names_file_and_line(project):
    folder = project.pipeline("p", "", steps="x = 1\ndef broken(:\n")
    with pytest.raises(DefinitionError) as info:
        Registry(folder, project.root).resolve("X", PipelineProcess)
    assert info.value.location.file.name == "steps.py"
    assert info.value.location.line == 2


def test_import_error_in_a_local_file_names_the_line(project):
    folder = project.pipeline("p", "", steps="import os\nimport not_a_module_anywhere\n")
    with pytest.raises(DefinitionError, match="No module named 'not_a_module_anywhere'") as info:
        Registry(folder, project.root).names()
    assert info.value.location.line == 2


def test_a_type_defined_twice_is_an_error(project):
    dup = (
        "from tipi import PipelineProcess\n"
        "class Step(PipelineProcess):\n    def execute(self): pass\n"
    )
    folder = project.pipeline("p", "", a=dup, b=dup)
    with pytest.raises(DefinitionError, match="defined twice: in a.py and b.py"):
        Registry(folder, project.root).names()


def test_abstract_and_imported_classes_are_not_registered(project):
    folder = project.pipeline(
        "p",
        "",
        steps="from tipi import PipelineProcess\nfrom tipi.permanence import Permanence\n"
        "class Base(PipelineProcess):\n    pass\n",
    )
    assert Registry(folder, project.root).local() == {}
