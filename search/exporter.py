"""`search export MODEL_DIR --format onnx|torchscript`: trace the graph the model's task gives
(trainables.task.Exportable), save it with a dynamic batch (and sequence) size, and check it before
saying it worked: the exported model's output on other sample inputs (another batch size, another
length) must match PyTorch's within TOLERANCE, run with onnxruntime for ONNX. Beside the file go
export.yaml (model.yaml plus what was exported) and the task's files (a text model's tokenizer).
"""

import warnings
from pathlib import Path

import yaml

from search.layout import write_atomic
from search.model_dir import read_model_dir
from search.tasks import get_task
from trainables.basics import UserError

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}  # format -> default file name
TOLERANCE = 1e-4  # max abs difference of outputs (logits) between the export and PyTorch, float32
ONNX_OPSET = 18  # torch.onnx's dynamo exporter's default; onnxruntime 1.32 runs it
EXPORT_EXTRA = 'ONNX export needs the `export` extra: pip install -e ".[export]"'


def write_onnx(graph, path: Path) -> None:
    import torch

    try:
        import onnx  # noqa: F401  (the dynamo exporter's own dependencies)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise UserError(f"{EXPORT_EXTRA} ({e.name} is missing)") from None
    # dynamo=True: the TorchScript-based exporter gave wrong outputs for BERT with another batch size
    # or length (checked here: max abs diff 0.01-8 on logits); the dynamo one matches to 1e-5
    torch.onnx.export(
        graph.module,
        graph.inputs,
        str(path),
        input_names=list(graph.input_names),
        output_names=[graph.output_name],
        dynamic_axes=graph.dynamic,
        opset_version=ONNX_OPSET,
        dynamo=True,
        external_data=False,  # one file: the models here are far below ONNX's 2 GB limit for that
        verbose=False,
    )


def run_onnx(path: Path, graph):
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"{EXPORT_EXTRA} (onnxruntime is missing)") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: x.numpy() for name, x in zip(graph.input_names, graph.check_inputs)}
    return session.run(None, feed)[0]


def write_torchscript(graph, path: Path) -> None:
    import torch

    torch.jit.trace(graph.module, graph.inputs, check_trace=False).save(str(path))


def run_torchscript(path: Path, graph):
    import torch

    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(*graph.check_inputs).numpy()


WRITERS = {"onnx": (write_onnx, run_onnx), "torchscript": (write_torchscript, run_torchscript)}


def export(model_dir, format: str = "onnx", output: Path | str | None = None) -> dict:
    """Export the model in `model_dir`; returns {"path", "format", "max_abs_diff"} after the parity check."""
    import torch

    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r} (known: {', '.join(FORMATS)})")
    folder, info = read_model_dir(model_dir)
    graph = get_task(info["task"]).export_graph(folder, info)  # a task whose models do not export says why here
    path = Path(output).expanduser().resolve() if output else folder / format / FORMATS[format]
    path.parent.mkdir(parents=True, exist_ok=True)
    write, run = WRITERS[format]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporters' advice on tracing, nothing the user can act on
        expected = graph.module(*graph.check_inputs).numpy()
        write(graph, path)
        got = run(path, graph)
    if got.shape != expected.shape:
        path.unlink()
        raise UserError(f"export parity check failed: output shape {got.shape}, PyTorch's {expected.shape}")
    diff = float(abs(got - expected).max())
    if not diff <= TOLERANCE:
        path.unlink()
        raise UserError(f"export parity check failed: max abs difference {diff:.3g} > {TOLERANCE} (nothing written)")
    graph.write_beside(path.parent)
    exported = {
        "format": format,
        "file": path.name,
        "inputs": {name: list(x.shape) for name, x in zip(graph.input_names, graph.inputs)},
        "dynamic_axes": graph.dynamic,
        "output": graph.output_name,
        "parity_max_abs_diff": diff,
        "parity_inputs": {name: list(x.shape) for name, x in zip(graph.input_names, graph.check_inputs)},
    }
    write_atomic(path.parent / "export.yaml", yaml.safe_dump({**info, "export": exported}, sort_keys=False))
    print(
        f"export: wrote {path} ({format}); parity with PyTorch on {exported['parity_inputs']}: max abs diff {diff:.2e}"
    )
    return {"path": path, "format": format, "max_abs_diff": diff}
