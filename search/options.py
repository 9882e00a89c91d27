"""A search's options as one plain dataclass: built by the CLI (or a test), validated at the edge,
saved beside the search as search.yaml and read back by `search resume`.
"""

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from search.layout import write_atomic
from trainables.basics import UserError
from trainables.settings import AMP_MODES


@dataclass
class SearchOptions:
    """Everything a search needs, as plain data (the CLI builds it; tests build it directly)."""

    task: str
    output: Path
    data: str | None = None
    space: Path | None = None
    trials: int = 16
    max_epochs: int | None = 8  # None: the task decides (text: by data size)
    time_budget: float | None = None  # seconds
    max_concurrent: int | None = None  # None: as many as the CPUs/GPUs allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2  # retries of a trial that raised, each from its last checkpoint
    seed: int = 0
    backbone: str = "auto"
    pretrained: bool = True
    image_size: int | None = None  # None: default_image_size()
    model: str | None = None  # text: a model directory or hub name; None: the packaged MiniLM
    extend_vocab: bool = False  # text: add the words/characters the tokenizer maps to [UNK]
    skip_bad_lines: bool = False  # text: skip and count malformed lines instead of refusing the file
    skip_bad_images: bool = False  # images: skip and count unreadable files instead of refusing the data
    memory_budget: int | None = None  # images: bytes of decoded images kept in RAM; None: 30% of RAM
    val_fraction: float = 0.2
    patience: int = 3
    min_delta: float = 1e-3
    grace_period: int = 1  # epochs every trial gets before ASHA may stop it
    reduction_factor: int = 2  # ASHA keeps the top 1/reduction_factor at each rung
    memory_per_trial: float | None = None  # GB of memory Ray reserves per trial; None: none reserved
    pending_timeout: float = 600.0  # seconds to wait for a first trial to start (an autoscaler takes minutes)
    trial_timeout: float | None = None  # seconds without an epoch report; None: max(600, 10x the slowest epoch)
    address: str | None = None  # None: a private local Ray
    amp: str = "off"  # "bf16" or "fp16": CUDA autocast in the trials (needs --gpus-per-trial > 0)
    storage_path: str | None = None  # where Ray keeps the trials (a shared path or a URI); None: output
    reselect: int = 3  # the top trials re-run with other seeds before best.yaml is final; 0: off
    reselect_seeds: int = 2  # the other seeds each of them runs with
    overwrite: bool = False
    verbose: bool = False
    quiet: bool = False  # no per-trial progress: the final table and result lines only
    mlflow: str | None = None  # an MLflow tracking URI: every trial (and `search train`) logged there
    warm_start: Path | None = None  # an earlier search's output: its scored trials seed the sampler

    def validate(self) -> None:
        for ok, message in self.checks():
            if not ok:
                raise UserError(message)

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, the one line saying which flag is wrong) for every option."""
        return [
            (
                _whole(self.trials, 1, MAX_COUNT),
                f"--trials must be at least 1 and at most {MAX_COUNT}, got {self.trials}",
            ),
            (
                self.max_epochs is None or _whole(self.max_epochs, 1, MAX_COUNT),
                f"--max-epochs must be at least 1 and at most {MAX_COUNT}, got {self.max_epochs}",
            ),
            (
                self.time_budget is None or _real(self.time_budget, low=0, open_low=True),
                f"--time-budget must be positive (seconds), got {self.time_budget}",
            ),
            (
                self.max_concurrent is None or _whole(self.max_concurrent, 1, MAX_COUNT),
                f"--max-concurrent must be at least 1 and at most {MAX_COUNT}, got {self.max_concurrent}",
            ),
            (
                _resource(self.cpus_per_trial) and self.cpus_per_trial > 0,
                f"--cpus-per-trial must be positive: a fraction below 1 or a whole number, got {self.cpus_per_trial}",
            ),
            (
                _resource(self.gpus_per_trial),
                f"--gpus-per-trial must not be negative: 0, a fraction below 1 or a whole number, got "
                f"{self.gpus_per_trial}",
            ),
            (
                self.memory_per_trial is None or _real(self.memory_per_trial, low=0, open_low=True),
                f"--memory-per-trial must be a positive number of GB, got {self.memory_per_trial}",
            ),
            (
                _whole(self.max_failures, 0, MAX_COUNT),
                f"--max-failures must not be negative (at most {MAX_COUNT}), got {self.max_failures}",
            ),
            (_whole(self.seed, 0, MAX_SEED), f"--seed must be 0 or more (at most {MAX_SEED}), got {self.seed}"),
            (
                self.image_size is None or _whole(self.image_size, 16, 1024),
                f"--image-size must be in [16, 1024], got {self.image_size}",
            ),
            (
                _real(self.val_fraction, 0, 1, open_low=True, open_high=True),
                f"--val-fraction must be between 0 and 1, got {self.val_fraction}",
            ),
            (_whole(self.patience, 0, MAX_COUNT), f"--patience must not be negative, got {self.patience}"),
            (
                _real(self.min_delta, low=0),
                f"--min-delta must be a number of 0 or more (a val_loss difference), got {self.min_delta}",
            ),
            (
                _whole(self.grace_period, 1, self.max_epochs or MAX_COUNT),
                f"--grace-period must be in [1, --max-epochs], got {self.grace_period}",
            ),
            (
                _whole(self.reduction_factor, 2, 100),
                f"reduction_factor must be a whole number in [2, 100], got {self.reduction_factor}",
            ),
            (
                _real(self.pending_timeout, low=0, open_low=True),
                f"--pending-timeout must be a positive number of seconds, got {self.pending_timeout}",
            ),
            (
                self.trial_timeout is None or _real(self.trial_timeout, low=0, open_low=True),
                f"--trial-timeout must be a positive number of seconds, got {self.trial_timeout}",
            ),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}"),
            (
                self.amp == "off" or self.gpus_per_trial > 0,
                f"--amp {self.amp} needs a GPU: give --gpus-per-trial > 0, or leave --amp off to train in fp32 "
                "on the CPU",
            ),
            (self.address is None or bool(str(self.address).strip()), "--address must not be empty"),
            (
                _whole(self.reselect, 0, MAX_COUNT) and self.reselect != 1,  # one candidate: nothing to choose
                f"--reselect must be 0 (off) or at least 2 trials to choose between, got {self.reselect}",
            ),
            (
                _whole(self.reselect_seeds, 1, MAX_COUNT),
                f"--reselect-seeds must be at least 1, got {self.reselect_seeds}",
            ),
            (
                self.mlflow is None or bool(str(self.mlflow).strip()),
                "--mlflow must be a tracking URI (file:/path, sqlite:///mlflow.db, http://host:5000)",
            ),
        ]


MAX_COUNT = 100_000  # trials, epochs, retries: more is a typing mistake, not a search anyone waits for
MAX_SEED = 2**32 - 1  # Optuna's sampler (numpy's RandomState) takes a 32-bit seed


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _real(value, low=-math.inf, high=math.inf, open_low=False, open_high=False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return (value > low if open_low else value >= low) and (value < high if open_high else value <= high)


def _resource(value) -> bool:
    """What Ray accepts as a resource quantity: 0, a fraction below 1, or a whole number."""
    return _real(value, 0, MAX_COUNT) and (value < 1 or float(value).is_integer())


def save_options(options: SearchOptions, path: Path) -> None:
    plain = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(options).items()}
    write_atomic(path, yaml.safe_dump(plain, sort_keys=False))


def load_options(path: Path) -> SearchOptions:
    """The options a search ran with, read back from its search.yaml and validated."""
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(SearchOptions)}
        if not isinstance(saved, dict) or not set(saved) <= fields:
            raise ValueError(f"unexpected keys {sorted(set(saved or {}) - fields)}")
        options = SearchOptions(**saved)
    except (OSError, yaml.YAMLError, ValueError, TypeError) as e:
        raise UserError(f"{path} is damaged ({str(e).splitlines()[0]}); cannot resume") from None
    options.output = Path(options.output)
    options.space = Path(options.space) if options.space else None
    options.warm_start = Path(options.warm_start) if options.warm_start else None
    options.validate()
    return options
