"""What every trial (and `search train`) is given besides its hyperparameters, as one typed
dataclass built by one function, `trial_settings`, for a search, for `search train` and for the
benchmarks. The task's own part (backbone and image size, or the text model and its labels) rides
along as `model`, a small dataclass the task defines (ImageModel, TextModel).
"""

from dataclasses import dataclass
from typing import Any

AMP_MODES = ("off", "bf16", "fp16")  # --amp: mixed precision on a GPU; a CPU trains in fp32


@dataclass(frozen=True)
class TrialSettings:
    epochs: int  # a trial's budget (ASHA's max_t), or the epochs `search train` trains
    schedule_epochs: int  # the learning rate's schedule spans these (the search's max epochs)
    patience: int  # plateau rule: stop after this many epochs without val_loss improving; 0: off
    min_delta: float  # the smallest val_loss improvement that counts
    seed: int  # initialisation, order, augmentation: each epoch reseeds from (seed, epoch)
    threads: int  # torch threads
    device: str  # "cpu" or "cuda"
    amp: str  # one of AMP_MODES
    model: Any  # the task's part: trainables.image_task.ImageModel or trainables.text_task.TextModel


def trial_settings(
    model: Any,
    *,
    epochs: int,
    schedule_epochs: int,
    seed: int,
    patience: int,
    min_delta: float,
    cpus: float,
    gpus: float,
    amp: str,
) -> TrialSettings:
    """The settings for trials given `cpus` and `gpus` each (torch threads = whole CPUs, at least
    one; a GPU share of any size puts the trial on CUDA)."""
    return TrialSettings(
        epochs=epochs,
        schedule_epochs=schedule_epochs,
        patience=patience,
        min_delta=min_delta,
        seed=seed,
        threads=max(1, int(cpus)),
        device="cuda" if gpus > 0 else "cpu",
        amp=amp,
        model=model,
    )
