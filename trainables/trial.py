"""The Ray Tune trainable of every task: fit the task's model on a trial's data, report (and
checkpoint) after every epoch, and continue from the latest checkpoint after a failure or a resume.
"""

import dataclasses

from trainables.basics import with_defaults
from trainables.checkpoints import latest_state, report_with_checkpoint
from trainables.loop import release_memory
from trainables.settings import TrialSettings
from trainables.task import Task

RESELECT = "_reselect"  # reserved config key of a selection re-run (search/selection.py); never a hyperparameter


def run_trial(config: dict, task: Task, settings: TrialSettings, data) -> None:
    """One trial: the task's `fit` on the train part of what `prepare` shipped, scored on the
    validation part; hyperparameters the space leaves out take the task's defaults. A selection
    re-run's config holds only RESELECT: the candidate's config, its own seed and epochs."""
    if RESELECT in config:
        rerun = config[RESELECT]
        config = rerun["config"]
        settings = dataclasses.replace(settings, seed=rerun["seed"], epochs=rerun["epochs"])
    try:
        train, evaluation = task.trial_data(data)
        task.fit(
            with_defaults(task.hyperparameters, config),
            settings,
            train,
            evaluation,
            report_with_checkpoint,
            resume=latest_state(),
        )
    finally:
        release_memory()
