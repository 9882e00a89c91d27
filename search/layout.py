"""The output folder of a search, defined once: every file and folder name the tuner, progress,
results, report, resume and `search train` read or write, and the atomic write they all use (a
temporary file and a rename, so a reader never sees half a file, even after a crash).
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

METRICS = "metrics.json"  # what `search train` measured, in its own folder
MODEL_INFO = "model.yaml"  # beside the model `search train` saved: what predict and export need to use it


@dataclass(frozen=True)
class Layout:
    """The paths inside one search's --output folder."""

    root: Path

    @property
    def results(self) -> Path:  # one row per trial, best first
        return self.root / "results.csv"

    @property
    def best(self) -> Path:  # the winning configuration, for `search train`
        return self.root / "best.yaml"

    @property
    def options(self) -> Path:  # the options the search ran with, for `search resume`
        return self.root / "search.yaml"

    @property
    def space(self) -> Path:  # the space it searched, copied: resume must not see later edits
        return self.root / "space.yaml"

    @property
    def trials(self) -> Path:  # Ray's experiment folder (under --storage-path when one is given)
        return self.root / TRIALS

    @property
    def tokenizer(self) -> Path:  # text with --extend-vocab: the grown tokenizer
        return self.root / "tokenizer"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def figures(self) -> Path:  # the report's figures as PNG files
        return self.root / "report"

    @property
    def compare_csv(self) -> Path:  # `search train --compare-scratch`
        return self.root / "compare.csv"

    @property
    def compare_png(self) -> Path:
        return self.root / "compare.png"

    def final(self, name: str = "final") -> Path:
        """Where `search train` writes by default: final/, final-checkpoint/, final-scratch/..."""
        return self.root / name

    def search_files(self) -> tuple[Path, ...]:
        """What marks a folder as holding a search, and what --overwrite removes (trials/ aside)."""
        return (self.results, self.best, self.options, self.space)


TRIALS = "trials"  # Ray's experiment name: the folder inside --output or --storage-path


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
