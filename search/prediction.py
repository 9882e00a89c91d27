"""`search predict MODEL_DIR INPUT...`, for every task: read the model folder's model.yaml, expand
the inputs' globs, let the task predict (on the GPU when there is one) and write what it returns as
the task writes predictions (CSV; CoNLL for ner) to a file or to stdout.
"""

import glob
import sys
from pathlib import Path

from search.model_dir import read_model_dir
from search.tasks import get_task
from trainables.basics import UserError

GLOB_CHARACTERS = "*?["


def expand(inputs: list[str]) -> list[str]:
    """Inputs with their globs expanded (sorted; ** reaches into sub-folders); a glob matching
    nothing is an error, as a missing file would be."""
    if not inputs:
        raise UserError("nothing to predict: give at least one input")
    out = []
    for given in inputs:
        if any(c in given for c in GLOB_CHARACTERS) and not Path(given).exists():
            matches = sorted(glob.glob(str(Path(given).expanduser()), recursive=True))
            if not matches:
                raise UserError(f"no file matches {given}")
            out += matches
        else:
            out.append(given)
    return out


def predict(
    model_dir,
    inputs: list[str],
    answers: str | None = None,
    top: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> list:
    """The task's predictions for `inputs` (paths or globs) from the model in `model_dir`."""
    import torch

    folder, info = read_model_dir(model_dir)
    task = get_task(info["task"])
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    options = {"answers": answers, "top": top, "batch_size": batch_size}
    return task.predict(folder, info, expand([str(i) for i in inputs]), options, device)


def write_predictions(model_dir, rows: list, output: Path | None) -> None:
    """Write `rows` the way the model's task writes them: to `output`, or to stdout."""
    _, info = read_model_dir(model_dir)
    task = get_task(info["task"])
    if output is None:
        task.write_predictions(rows, sys.stdout)
        return
    output = Path(output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="") as stream:
        task.write_predictions(rows, stream)
    print(f"predict: {len(rows)} predictions -> {output}", file=sys.stderr)
