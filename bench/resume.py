"""What a stop and a resume cost, in one run: a search on a tiny generated dataset is stopped by
SIGTERM to its whole process group (as `timeout` or a batch scheduler sends it) after its first
finished trial, then `search resume` finishes it. Prints the seconds per trial-epoch of each part,
their ratio (resumed / original), and the time from the resume command to its first epoch report.
Run: python -m bench.resume [--trials 6] [--epochs 3]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def tiny_images(root: Path, per_class: int = 12, size: int = 24) -> Path:
    """Two colour-coded classes of noisy JPEGs (as tests/conftest.py makes): learnable in an epoch."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 4)):
        for name, channel in (("cat", 0), ("dog", 2)):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 120, size=(size, size, 3), dtype=np.uint8)
                pixels[..., channel] += 120
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg")
    return root


def epochs_logged(trials: Path) -> int:
    return sum(
        len((d / "result.json").read_text().splitlines()) for d in trials.iterdir() if (d / "result.json").is_file()
    )


def first_new_epoch(trials: Path, before: int, started: float, found: list) -> None:
    """Poll until the trials hold more epochs than `before`; record the seconds since `started`."""
    while not found:
        if trials.is_dir() and epochs_logged(trials) > before:
            found.append(time.monotonic() - started)
        time.sleep(0.05)


def run(trials: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data, output = tiny_images(Path(tmp) / "data"), Path(tmp) / "out"
        command = [sys.executable, "-m", "search", "hotdog", "--data", str(data), "--output", str(output)]
        command += ["--trials", str(trials), "--max-epochs", str(epochs), "--image-size", "32", "--no-report"]
        command += ["--max-concurrent", "1", "--grace-period", str(epochs)]  # every trial runs every epoch
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
        for line in proc.stdout:
            if line.startswith("[1/"):
                os.killpg(proc.pid, signal.SIGTERM)
                break
        proc.communicate(timeout=300)
        original_s = time.monotonic() - started
        if proc.returncode != 130:
            raise SystemExit(f"the search exited {proc.returncode} on SIGTERM, not 130")
        done_before = epochs_logged(output / "trials")

        found: list[float] = []
        started = time.monotonic()
        watcher = threading.Thread(target=first_new_epoch, args=(output / "trials", done_before, started, found))
        watcher.start()
        resumed = subprocess.run(
            [sys.executable, "-m", "search", "resume", str(output)], cwd=REPO, capture_output=True, text=True
        )
        resumed_s = time.monotonic() - started
        found.append(float("nan"))  # stops the watcher if no epoch came
        watcher.join()
        if resumed.returncode != 0:
            raise SystemExit(f"search resume exited {resumed.returncode}: {resumed.stderr[-2000:]}")
        done_after = epochs_logged(output / "trials") - done_before
        return {
            "original_s_per_trial_epoch": original_s / done_before,
            "resumed_s_per_trial_epoch": resumed_s / done_after,
            "ratio_resumed_over_original": (resumed_s / done_after) / (original_s / done_before),
            "first_resumed_epoch_s": found[0],
            "trial_epochs": {"original": done_before, "resumed": done_after},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.resume", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.trials, args.epochs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
