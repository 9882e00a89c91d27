"""search: find the best way to fine-tune a pretrained model on your data (Ray Tune + Optuna + ASHA).

`search.run`, `search.train`, `search.predict` and `search.export` are the CLI's commands as functions."""

from search.api import export, predict, run, train

__all__ = ["export", "predict", "run", "train"]
