"""Export's formats, written the same bytes for the same model wherever and whenever they are
made: ONNX (torch.export-based, checked), ONNX fp16, TorchScript."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tipi.processes.onnx_tools import ort_session


def torchscript_bytes(model: Any, example: Any) -> bytes:
    """The TorchScript archive of `model` traced on `example`, the same bytes wherever and
    whenever it is made (a worker or the engine's process, first export or tenth).

    Four things in torch's archive depend on the maker, not the model: each code file's
    `.debug_pkl` holds the Python call stack of the trace (tipi's scheduler frames in one
    process, a worker's in another, the checkout's path); class names carry a
    `___torch_mangle_N` counted over every module traced so far in the process, and those
    of a model defined in the pipeline folder the folder's import name, which holds a
    digest of its path; the top folder is named after the file. So the trace gets a
    compilation unit of its own (its counter starts at 0) and names without the digest, and
    the archive is written to memory, then copied record by record by torch's own zip
    writer (which keeps the alignment) without the debug records: they only improve
    TorchScript's error messages. The serialization id torch adds is a hash of the records,
    so it follows."""
    import io

    import torch

    saved = io.BytesIO()
    with warnings.catch_warnings(), _own_compilation_unit() as unit, _portable_names(model):
        # TorchScript is deprecated upstream in favour of torch.export, but deployment
        # targets still load it; it is exported on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, example, _compilation_unit=unit)
        torch.jit.save(traced, saved)
    reader = torch._C.PyTorchFileReader(io.BytesIO(saved.getvalue()))
    target = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(target)
    for record in reader.get_all_records():
        if record.endswith(".debug_pkl") or record == ".data/serialization_id":
            continue
        data = reader.get_record(record)
        writer.write_record(record, data, len(data))
    writer.write_end_of_file()
    return target.getvalue()


@contextmanager
def _portable_names(model: Any) -> Iterator[None]:
    """For one trace, the TorchScript name of each class of `model` defined in a pipeline
    folder without the digest of the folder's path that its import name carries
    (`_tipi_pipelines.digits_123.models.Net` → `_tipi_pipelines.digits.models.Net`), through
    the override torch's own tracer uses (`_jit_override_qualname`). Names of other classes
    are left alone; the overrides are removed afterwards."""
    from torch._jit_internal import _qualified_name

    from tipi.siblings import LOCAL_PACKAGE

    digest = re.compile(rf"(\b{LOCAL_PACKAGE}\.\w+)_\d+(?=\.)")
    names = {cls: _qualified_name(cls) for cls in {type(m) for m in model.modules()}}
    local = {cls: digest.sub(r"\1", name) for cls, name in names.items() if digest.search(name)}
    # A subclass of a local class inherits the override: pin every class's own name too.
    pinned = {cls: local.get(cls, name) for cls, name in names.items()} if local else {}
    own = {cls: cls.__dict__[OVERRIDE] for cls in pinned if OVERRIDE in cls.__dict__}
    for cls, name in pinned.items():
        setattr(cls, OVERRIDE, name)
    try:
        yield
    finally:
        for cls in pinned:
            if cls in own:
                setattr(cls, OVERRIDE, own[cls])
            else:
                delattr(cls, OVERRIDE)


OVERRIDE = "_jit_override_qualname"


@contextmanager
def _own_compilation_unit() -> Iterator[Any]:
    """A fresh TorchScript compilation unit, installed as the one torch names module types
    in (`torch.jit._state._python_cu`, which its C++ side reads), for one trace. The traced
    module must be used inside: its types live in this unit only. tipi runs one step at a
    time per process (the engine's thread or a worker process), so swapping the global
    cannot race another trace."""
    import torch
    import torch.jit._state as state

    unit, before = torch._C.CompilationUnit(), state._python_cu
    state._python_cu = unit
    try:
        yield unit
    finally:
        state._python_cu = before


def export_onnx(model: Any, example: Any, path: Any, opset: int) -> None:
    """torch.onnx.export (the torch.export-based exporter) with a dynamic batch axis, then
    `onnx.checker`."""
    import onnx

    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    with warnings.catch_warnings():
        # torch's exporter warns about its own internals (pytree, TorchScript helpers) and
        # logs that optional torchvision ops are skipped; none of it concerns the user.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        onnx_logger.setLevel(logging.ERROR)
        try:
            _export(model, example, path, opset)
        finally:
            onnx_logger.setLevel(level)
    exported = onnx.load(str(path))
    for graph in (exported.graph, *exported.functions):
        _drop_makers_metadata(graph)
    onnx.save(exported, str(path))
    onnx.checker.check_model(exported, full_check=True)


# Node annotations of torch's exporter that name the maker, not the model: the Python stack
# of each op (absolute paths of the checkout and the environment) and the module and class
# path (a pipeline folder's import name holds a digest of its path). Without them the same
# model exports to the same bytes from any checkout; they only help read the graph.
MAKERS_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.class_hierarchy", "namespace")


def _drop_makers_metadata(graph: Any) -> None:
    """Remove MAKERS_METADATA from every node of `graph` (or function) and its subgraphs."""
    for node in graph.node:
        kept = [p for p in node.metadata_props if p.key not in MAKERS_METADATA]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else []
            for subgraph in [*subgraphs, *attribute.graphs]:
                _drop_makers_metadata(subgraph)


def _export(model: Any, example: Any, path: Any, opset: int) -> None:
    import torch

    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def onnx_parity(model: Any, path: Any, example: Any, level: str = "all") -> float:
    """Max absolute difference between onnxruntime (at graph optimization `level`) and eager
    outputs on `example` (Export itself judges by `compare_outputs`, relative to the scale)."""
    import torch

    session = ort_session(path, level)
    (onnx_out,) = session.run(None, {"input": example.numpy()})
    with torch.no_grad():
        eager = model(example).numpy()
    return float(abs(onnx_out - eager).max())


def to_fp16(source: Any, target: Any) -> None:
    """Convert weights and activations to float16, keeping float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    _sort_nodes(converted.graph)  # the converter appends its input casts at the end
    onnx.checker.check_model(converted)
    onnx.save(converted, str(target))


def _sort_nodes(graph: Any) -> None:
    """Reorder graph nodes topologically (each node after the producers of its inputs)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("the ONNX graph has a cycle or a dangling input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)
