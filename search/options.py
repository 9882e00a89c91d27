"""A search's options as one plain dataclass: built by the CLI (or a test), validated at the edge,
saved beside the search as search.yaml and read back by `search resume`.
"""

import dataclasses
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
    val_fraction: float = 0.2
    patience: int = 3
    min_delta: float = 1e-3
    grace_period: int = 1  # epochs every trial gets before ASHA may stop it
    reduction_factor: int = 2  # ASHA keeps the top 1/reduction_factor at each rung
    address: str | None = None  # None: a private local Ray
    amp: str = "off"  # "bf16" or "fp16": CUDA autocast in the trials (needs --gpus-per-trial > 0)
    storage_path: str | None = None  # where Ray keeps the trials (a shared path or a URI); None: output
    overwrite: bool = False
    verbose: bool = False

    def validate(self) -> None:
        checks = [
            (self.trials >= 1, f"--trials must be at least 1, got {self.trials}"),
            (
                self.max_epochs is None or self.max_epochs >= 1,
                f"--max-epochs must be at least 1, got {self.max_epochs}",
            ),
            (
                self.time_budget is None or self.time_budget > 0,
                f"--time-budget must be positive, got {self.time_budget}",
            ),
            (
                self.max_concurrent is None or self.max_concurrent >= 1,
                f"--max-concurrent must be at least 1, got {self.max_concurrent}",
            ),
            (self.cpus_per_trial > 0, f"--cpus-per-trial must be positive, got {self.cpus_per_trial}"),
            (self.gpus_per_trial >= 0, f"--gpus-per-trial must not be negative, got {self.gpus_per_trial}"),
            (self.max_failures >= 0, f"--max-failures must not be negative, got {self.max_failures}"),
            (self.seed >= 0, f"--seed must be 0 or more, got {self.seed}"),
            (
                self.image_size is None or 16 <= self.image_size <= 1024,
                f"--image-size must be in [16, 1024], got {self.image_size}",
            ),
            (0 < self.val_fraction < 1, f"--val-fraction must be between 0 and 1, got {self.val_fraction}"),
            (self.patience >= 0, f"--patience must not be negative, got {self.patience}"),
            (
                1 <= self.grace_period <= (self.max_epochs or self.grace_period),
                f"--grace-period must be in [1, --max-epochs], got {self.grace_period}",
            ),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}"),
            (
                self.amp == "off" or self.gpus_per_trial > 0,
                f"--amp {self.amp} needs a GPU: give --gpus-per-trial > 0, or leave --amp off to train in fp32 "
                "on the CPU",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


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
    options.validate()
    return options
