"""What a task is: one `Task` object per task (trainables/tasks/NAME.py defines it), holding its
name, metric and hyperparameter table and the functions shared code calls: prepare a search's data
on the driver, fit a model on the shared loop, and for `search train` build the final data, test a
model and save it. Shared code asks the task and never branches on what kind of task it is.
This module stays light (no torch): the CLI reads tasks for --help.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.basics import Hyperparameter
from trainables.settings import TrialSettings


@dataclass(frozen=True)
class Flag:
    """A task's own command-line flag: argparse's add_argument(*names, **options)."""

    names: tuple[str, ...]
    options: dict


@dataclass(frozen=True)
class Prepared:
    """What every trial of a search shares, made once on the driver by `Task.prepare`."""

    settings: TrialSettings
    data: Any  # shipped to every trial through Ray's object store
    record: dict  # what best.yaml carries besides the hyperparameters
    summary: str  # printed before the search: the data, the model, the budget


@dataclass(frozen=True)
class FinalData:
    """What `search train` trains and tests on, made from best.yaml by `Task.final_data`."""

    model: Any  # the task's part of TrialSettings
    train: Any  # train + validation
    test: Any
    describe: str  # what is trained and tested, e.g. "mobilenet_v2 (...) on 1400 images, testing on 598"
    facts: dict  # what metrics.json records about the model and data (backbone, classes, labels...)
    extra: Any = None  # anything the task's own steps need again (the tokenizer, the test examples)


@dataclass(frozen=True)
class Task:
    name: str
    summary: str  # one line, for --help
    metric: str  # what the search ranks trials by, e.g. val_accuracy
    mode: str  # "max" or "min"
    hyperparameters: dict[str, Hyperparameter]
    space_file: Path  # the default space
    data_help: str  # --data's help text
    default_trials: int
    max_epochs_help: str  # how --max-epochs defaults
    flags: tuple[Flag, ...]  # the task's own flags (backbone, image size; model, vocabulary...)
    # (task, options) -> Prepared: read the data once, load the weights, say what was found
    prepare: Callable
    # (data) -> (train, evaluation): a trial's two parts of what prepare shipped
    trial_data: Callable
    # (config, settings, train, evaluation, report, resume) -> model: the shared loop, `report`
    # called after every epoch (see trainables.loop.run_epochs)
    fit: Callable
    # (task, doc, data, pretrained) -> FinalData: best.yaml's data again, split as the search did
    final_data: Callable
    # (final, config, state) -> model: a trial checkpoint's model, for --from-checkpoint
    load_model: Callable
    # (model, final, config, device) -> {"val_loss", metric...}: score a model on final.test
    evaluate: Callable
    # (model, final, output) -> Path: write the model, return where it went
    save_model: Callable
    # (model, final, config, device) -> extra test scores (title's ROUGE-L); none by default
    test_extras: Callable = field(default=lambda model, final, config, device: {})
    compares_scratch: bool = False  # `search train --compare-scratch` (test accuracy per epoch)
