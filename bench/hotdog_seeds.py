"""`python -m bench.hotdog_seeds [--seeds 0 1 2] [--data DIR] [--runs DIR]`: the core's acceptance
run, repeated over seeds: `python -m search hotdog` with the default budget, then `search train` on
its best.yaml, as a user would. Prints one line per seed (search wall time, best validation
accuracy, test accuracy) and appends them to bench/HOTDOG_RESULTS.md's table.

A single run says little here: 280 validation and 598 test photos move accuracy by points.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

from bench.text_tasks import run

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hotdog"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--runs", type=Path, default=Path("runs") / "hotdog-seeds")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("HOTDOG_RESULTS.md"))
    args = parser.parse_args(argv)
    for seed in args.seeds:
        folder = args.runs / f"seed{seed}"
        log = args.runs / f"seed{seed}.log"
        folder.parent.mkdir(parents=True, exist_ok=True)
        search_s = run(
            [
                sys.executable,
                "-m",
                "search",
                "hotdog",
                "--data",
                str(args.data),
                "--seed",
                str(seed),
                "--output",
                str(folder),
                "--overwrite",
                "--no-report",
            ],
            log,
        )
        train_s = run([sys.executable, "-m", "search", "train", str(folder / "best.yaml")], log)
        best = yaml.safe_load((folder / "best.yaml").read_text())
        test = json.loads((folder / "final" / "metrics.json").read_text())
        h = best["hyperparameters"]
        line = (
            f"| {seed} | {search_s:.0f} s | {train_s:.0f} s | {best['metric']['value']:.4f} | {best['epochs']} | "
            f"frozen_layers {h['frozen_layers']}, lr {h['lr']:.2g}, head x{h['head_lr_mult']:.2g}, "
            f"batch {h['batch_size']} | {test['test_accuracy']:.4f} |"
        )
        print(line, flush=True)
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
