"""search: find the best way to fine-tune a pretrained model on your data (Ray Tune + Optuna + ASHA)."""
