"""The commands that use a model folder `search train` wrote: `python -m search predict MODEL_DIR
INPUT...` and `python -m search export MODEL_DIR --format onnx|torchscript`. Their flags, and
handlers that call the Python API (search/api.py), so the CLI and a notebook do the same thing.
"""

import argparse
from pathlib import Path

from trainables.basics import whole_number

EXPORT_FORMATS = ("onnx", "torchscript")  # search/exporter.py's FORMATS; listed here so --help loads no torch


def add_model_commands(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="predict with a trained model: CSV of classes and probabilities (images, classify), "
        "CoNLL (ner), ranked answers (qa), titles (title), perplexities (lm)",
    )
    predict.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="the folder `search train` wrote")
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="images: files, folders, globs; text: files, one example a line (ner: CoNLL)",
    )
    predict.add_argument("--output", type=Path, metavar="FILE", help="where the predictions go (default: stdout)")
    predict.add_argument("--answers", metavar="FILE", help="qa: the candidate answers, one a line")
    predict.add_argument("--top", type=whole_number, help="qa: answers shown per question (default: 3)")
    predict.add_argument(
        "--batch-size",
        type=whole_number,
        help="images, classify, qa: inputs per forward pass (default: the evaluation's: 256 images, 64 texts)",
    )
    export = commands.add_parser(
        "export", help="export a trained model to ONNX or TorchScript, checked against PyTorch's outputs"
    )
    export.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="the folder `search train` wrote")
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="onnx",
        help="onnx (needs the `export` extra) or torchscript (default: %(default)s)",
    )
    export.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="the exported file (default: MODEL_DIR/onnx/model.onnx, MODEL_DIR/torchscript/model.torchscript.pt)",
    )


def run_model_command(args: argparse.Namespace) -> None:
    from search import api

    if args.command == "predict":
        rows = api.predict(args.model_dir, args.inputs, answers=args.answers, top=args.top, batch_size=args.batch_size)
        from search.prediction import write_predictions

        write_predictions(args.model_dir, rows, args.output)
    else:
        api.export(args.model_dir, args.format, args.output)


MODEL_COMMANDS = ("predict", "export")
