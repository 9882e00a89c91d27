"""A model folder `search train` wrote, described by its model.yaml: the task, the weights' file,
the classes or labels, the backbone or encoder, how inputs are prepared, the configuration, the
test scores and the package versions. Written here for search/final.py, read back (validated, one
line on a bad folder) for `search predict` and `search export`.
"""

from pathlib import Path

import yaml

from search.layout import MODEL_INFO, write_atomic
from search.results import package_versions
from trainables.basics import UserError


def model_info(task, final, config: dict, model_file: Path, scores: dict, trained: dict) -> dict:
    """model.yaml's document: the task's facts and preprocessing, the configuration, the test scores."""
    return {
        "task": task.name,
        "model_file": str(model_file),  # relative to the folder
        **final.facts,
        "preprocessing": task.preprocessing(final, config),
        "hyperparameters": config,
        "test": {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))},  # all of them: metrics.json
        "trained": trained,
        "versions": package_versions(),
    }


def write_model_info(folder: Path, info: dict) -> None:
    write_atomic(folder / MODEL_INFO, yaml.safe_dump(info, sort_keys=False, allow_unicode=True))


def read_model_dir(folder: Path | str) -> tuple[Path, dict]:
    """(the folder, its model.yaml) for a folder `search train` wrote; model.yaml's own path and the
    weights' path inside the folder (final/model.pt, final/model) are taken for the folder."""
    folder = Path(folder).expanduser().resolve()
    if folder.name == MODEL_INFO or (not (folder / MODEL_INFO).exists() and (folder.parent / MODEL_INFO).is_file()):
        folder = folder.parent  # model.yaml itself, or the weights inside the folder (a text model's model/)
    path = folder / MODEL_INFO
    if not folder.is_dir():
        raise UserError(f"model folder {folder} does not exist")
    if not path.is_file():
        raise UserError(
            f"{folder} has no {MODEL_INFO}: give the folder `search train` wrote (e.g. runs/hd/final); "
            "a folder trained before model.yaml existed needs `search train` again"
        )
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(info, dict) or not all(key in info for key in ("task", "model_file", "preprocessing")):
        raise UserError(f"{path} is not a model.yaml written by `search train` (no task, model_file or preprocessing)")
    if not (folder / info["model_file"]).exists():
        raise UserError(f"{path} names {info['model_file']}, which is not in {folder}")
    return folder, info
