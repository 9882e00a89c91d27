"""`python -m bench.warm_start [--data DIR] [--runs DIR] [--only NAME ...]`: does --warm-start help?
On hotdog with a small budget (8 trials, at most 3 epochs, one trial at a time, --reselect 0, the
space spaces/hotdog.yaml), a first search; then, with the same seed and data (so the same split),
a second search cold and the same second search warm-started from the first. With the same seed a
cold search draws the first's configurations again, so it shows how far training noise alone moves
the scores. Prints, for each, the best score after each trial (in the order they ran) and after how
many trials it reaches the first search's best val_accuracy. A search already in --runs is reused;
--only first|cold|warm runs just those (each under `flock /tmp/ray.lock` on a shared machine).

One pair of searches on 280 validation photos says little: accuracy moves in steps of 1/280.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hotdog"
SPACE = Path(__file__).resolve().parents[1] / "spaces" / "hotdog.yaml"  # named: the same space for all three
BUDGET = {"trials": 8, "max_epochs": 3, "max_concurrent": 1, "reselect": 0, "report": False, "quiet": True}
SEARCHES = {"first": (0, None), "cold": (0, None), "warm": (0, "first")}  # name: (seed, warm-started from)


def run_order(output: Path, metric: str = "val_accuracy") -> list[float]:
    """Each trial's score in the order the trials ran: by the time of its first report (one trial at
    a time, so the order they started in); a trial that never reported goes last."""
    table = pd.read_csv(output / "results.csv")

    def first_report(trial_id: str) -> float:
        try:
            with open(output / "trials" / trial_id / "result.json", encoding="utf-8") as f:
                return float(json.loads(f.readline())["timestamp"])
        except (OSError, ValueError, KeyError):
            return math.inf

    table = table.assign(order=table["trial_id"].map(first_report)).sort_values("order", kind="stable")
    return table[metric].fillna(-math.inf).tolist()


def trials_to_reach(scores: list[float], target: float) -> int | None:
    """1-based count of trials until the best so far reaches `target`; None if it never does."""
    return next((i + 1 for i, score in enumerate(scores) if score >= target - 1e-9), None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--runs", type=Path, default=Path("runs") / "warm-start")
    parser.add_argument("--only", nargs="+", choices=list(SEARCHES), default=list(SEARCHES))
    args = parser.parse_args(argv)
    import search

    for name in args.only:
        seed, source = SEARCHES[name]
        folder = args.runs / name
        if (folder / "results.csv").is_file():
            continue
        extra = {"warm_start": str(args.runs / source)} if source else {}
        search.run(
            "hotdog",
            data=str(args.data),
            output=str(folder),
            seed=seed,
            space=str(SPACE),
            overwrite=True,
            **BUDGET,
            **extra,
        )
    done = [name for name in SEARCHES if (args.runs / name / "results.csv").is_file()]
    if "first" not in done:
        return 0
    scores = {name: run_order(args.runs / name) for name in done}
    target = max(scores["first"])
    print(f"first search (seed 0): best val_accuracy {target:.4f} after {trials_to_reach(scores['first'], target)}")
    for name in [n for n in ("cold", "warm") if n in scores]:
        best = pd.Series(scores[name]).cummax().tolist()
        reached = trials_to_reach(scores[name], target)
        print(
            f"{name:4} (seed 0): best so far {' '.join(f'{b:.3f}' for b in best)}; reaches {target:.4f} "
            + (f"after {reached} trial(s)" if reached else f"in none of its {len(best)} trials")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
