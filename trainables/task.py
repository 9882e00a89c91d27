"""What a task is: one `Task` object per task (trainables/tasks/NAME.py defines it), holding its
name, metric and hyperparameter table and the functions shared code calls: prepare a search's data
on the driver, fit a model on the shared loop, for `search train` build the final data, test a
model and save it, and for the saved model predict and export. Shared code asks the task and never
branches on what kind of task it is. This module stays light (no torch): the CLI reads tasks for --help.
"""

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.basics import Hyperparameter, UserError
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
class Exportable:
    """What `search export` traces, made by `Task.export_graph` from a model folder: a module of
    tensors in, one tensor out (logits or embeddings), sample inputs, and what travels beside it."""

    module: Any  # a torch.nn.Module in eval mode
    inputs: tuple  # sample inputs to trace with
    check_inputs: tuple  # other sample inputs (another batch size, another length): the parity check
    input_names: tuple[str, ...]
    output_name: str
    dynamic: dict  # input name -> {axis: name} of the axes that may vary (batch, sequence)
    write_beside: Callable = field(default=lambda folder: None)  # (folder) -> None: the tokenizer's files


def write_csv(rows: list[dict], stream) -> None:
    """Predictions as CSV, one row each, the first row's keys as the header."""
    if rows:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def no_preprocessing(final: FinalData, config: dict) -> dict:
    return {}


def cannot_predict(info: dict) -> list:
    raise UserError(f"{info['task']} models have no predict")


def cannot_export(reason: str) -> Callable:
    """An export_graph that refuses, saying why (in one line)."""

    def refuse(folder: Path, info: dict) -> Exportable:
        raise UserError(f"{info['task']} models cannot be exported: {reason}")

    return refuse


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
    # ---- the saved model (search train's folder, described by its model.yaml) ----
    # (final, config) -> what model.yaml records about preparing inputs (image size, normalisation; tokenizer)
    preprocessing: Callable = no_preprocessing
    # (folder, info, inputs, options, device) -> rows: the model in `folder` (info: its model.yaml) on
    # the inputs (paths; globs already expanded); options: batch_size and the task's own (qa's answers, top)
    predict: Callable = field(default=lambda folder, info, inputs, options, device: cannot_predict(info))
    write_predictions: Callable = write_csv  # (rows, text stream) -> None
    # (folder, info) -> Exportable, or a one-line UserError saying why the task's models do not export
    export_graph: Callable = cannot_export("no export defined")
    # (task, options) -> (space, why): the default space chosen from the data when no --space is
    # given, as the plain mapping a spaces/*.yaml file holds, and one line saying what it saw and
    # chose. None: the task's space_file is the default.
    choose_space: Callable | None = None
