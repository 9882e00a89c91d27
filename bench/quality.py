"""`python -m bench.quality [--sets ...] [--columns ...] [--seeds 0 1 2]`: search quality on the shared
sets, as a user would run it (`python -m search`, then `search train`), in three columns: the
hand-set recipe as a fixed space (bench/recipes/), the search as it was before issue 15 (run from a
git worktree of OLD_COMMIT), and the new default (no --space). One JSON per (set, column, seed)
under bench/quality/, skipped when already there, so an interrupted run resumes; `--table` writes
bench/QUALITY.md's table from them. Each run holds --lock (the Ray lock others share) while it runs.
"""

import argparse
import datetime
import fcntl
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RECIPES = Path(__file__).with_name("recipes")
RECORDS = Path(__file__).with_name("quality")
OLD_COMMIT = "882cb96"  # the last commit before issue 15's work: the search as it was
OLD_TREE = Path("/tmp/old_search")  # `git worktree add /tmp/old_search 882cb96`, outside the repo
OLD_CACHE = Path("/tmp/old_search_cache")
COLUMNS = ("recipe", "old", "new")
QUICK = ["--trials", "1", "--max-epochs", "1", "--image-size", "32", "--max-concurrent", "1"]  # --quick


@dataclass(frozen=True)
class DataSet:
    name: str
    task: str
    data: Path
    metric: str  # the test metric of `search train`'s metrics.json
    recipe: str  # bench/recipes/NAME.yaml
    recipe_epochs: int  # the recipe's epochs, searched and trained
    flags: tuple = ()  # given to every column's search (what a user of this set must pass)


SETS = {
    "hotdog": DataSet("hotdog", "hotdog", SHARED / "hotdog", "test_accuracy", "image", 5),
    "food20": DataSet("food20", "image", SHARED / "food20", "test_accuracy", "image", 5),
    "agnews": DataSet("agnews", "classify", SHARED / "text" / "cls_en_agnews_sample", "test_accuracy", "text", 3),
    # the stock English MiniLM maps most Chinese characters to [UNK]: every column adds them
    "pd1998": DataSet("pd1998", "ner", SHARED / "text" / "ner_zh_pd1998", "test_f1", "text", 3, ("--extend-vocab",)),
}


def commands(
    ds: DataSet, column: str, seed: int, folder: Path, extra: list[str], old_code: bool
) -> tuple[list, list, dict]:
    """(search command, train command, environment) of one run; `old_code`: run OLD_TREE's code."""
    python = sys.executable
    env = dict(os.environ)
    search = [python, "-m", "search", ds.task, "--data", str(ds.data), "--seed", str(seed), *ds.flags]
    search += ["--output", str(folder), "--overwrite", "--no-report"]
    train = [python, "-m", "search", "train", str(folder / "best.yaml")]
    if column == "recipe":
        # the fixed space's one run only writes best.yaml (its validation score chooses nothing): one
        # epoch of it, on every core; `search train` then trains the recipe's epochs from scratch, its
        # schedule over those epochs, which is what the recipe's test score and cost are
        search += ["--space", str(RECIPES / f"{ds.recipe}.yaml"), "--max-epochs", "1"]
        search += ["--cpus-per-trial", str(os.cpu_count())]
        train += ["--epochs", str(ds.recipe_epochs)]
    search += extra  # last: they override the column's own flags
    if old_code:
        env["PYTHONPATH"] = str(OLD_TREE)  # the old code, with this venv's packages
        env["SEARCH_CACHE_DIR"] = str(OLD_CACHE)  # its decoded-image and feature caches may differ in format
    return search, train, env


def timed(command: list[str], env: dict, log: Path, cwd: Path) -> float:
    started = time.monotonic()
    with open(log, "a", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {code}; see {log}")
    return time.monotonic() - started


def run_one(ds: DataSet, column: str, seed: int, runs: Path, extra: list[str], old_code: bool) -> dict:
    """Search then train; the record of the run (test metric, validation metric, wall times, winner)."""
    folder = (runs / f"{ds.name}-{column}-seed{seed}").resolve()
    log = folder.with_suffix(".log")
    folder.parent.mkdir(parents=True, exist_ok=True)
    search, train, env = commands(ds, column, seed, folder, extra, old_code)
    cwd = OLD_TREE if old_code else REPO
    load_before = os.getloadavg()[1]
    search_s = timed(search, env, log, cwd)
    train_s = timed(train, env, log, cwd)
    best = yaml.safe_load((folder / "best.yaml").read_text(encoding="utf-8"))
    metrics = json.loads((folder / "final" / "metrics.json").read_text(encoding="utf-8"))
    return {
        "set": ds.name,
        "column": column,
        "seed": seed,
        "test": metrics[ds.metric],
        "metric": ds.metric,
        "validation": best["metric"]["value"],
        "search_s": round(search_s, 1),
        "train_s": round(train_s, 1),
        "epochs": best["epochs"],
        "hyperparameters": best["hyperparameters"],
        "selection": best.get("selection"),
        "load": [round(load_before, 2), round(os.getloadavg()[1], 2)],  # 5-minute load: other jobs on the CPUs
        "code": OLD_COMMIT if old_code else "working tree",
        "commands": [" ".join(search), " ".join(train)],
        "date": datetime.date.today().isoformat(),
    }


def record_path(records: Path, name: str, column: str, seed: int) -> Path:
    return records / f"{name}-{column}-seed{seed}.json"


def locked(lock: Path | None):
    """An exclusive flock on `lock` (as `flock LOCK ...` takes it), or nothing."""
    if lock is None:
        return None
    handle = open(lock, "a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def run_cells(args) -> int:
    done = 0
    for name in args.sets:
        for column in args.columns:
            for seed in args.seeds:
                path = record_path(args.records, name, column, seed)
                if path.exists():
                    continue  # resumable: a finished run is never repeated
                if done and args.pause:
                    time.sleep(args.pause)  # let the others take the lock between runs
                handle = locked(args.lock)
                try:
                    old_code = column == "old" or (column == "recipe" and args.recipe_code == "old")
                    record = run_one(args.sets_table[name], column, seed, args.runs, args.extra, old_code)
                finally:
                    if handle:
                        handle.close()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
                print(
                    f"{name} {column} seed {seed}: {record['metric']} {record['test']:.4f}, "
                    f"search {record['search_s']:.0f}s + train {record['train_s']:.0f}s",
                    flush=True,
                )
                done += 1
    return done


def cell_rows(records: Path) -> list[dict]:
    """One row per (set, column) from the records there: test mean, spread, seeds, wall time."""
    found: dict[tuple, list] = {}
    for path in sorted(records.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        found.setdefault((record["set"], record["column"]), []).append(record)
    rows = []
    for (name, column), runs in found.items():
        tests = [r["test"] for r in runs]
        walls = [r["search_s"] + r["train_s"] for r in runs]
        rows.append(
            {
                "set": name,
                "column": column,
                "metric": runs[0]["metric"],
                "seeds": sorted(r["seed"] for r in runs),
                "mean": statistics.mean(tests),
                "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                "low": min(tests),
                "high": max(tests),
                "wall_s": statistics.mean(walls),
            }
        )
    order = {name: i for i, name in enumerate(SETS)}
    return sorted(rows, key=lambda r: (order.get(r["set"], 99), COLUMNS.index(r["column"])))


def table_markdown(rows: list[dict]) -> str:
    lines = [
        "| set | column | test metric | seeds | mean | std | range | wall (search + train), mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['column']} | {r['metric']} | {','.join(map(str, r['seeds']))} | {r['mean']:.4f} | "
            f"{r['std']:.4f} | {r['low']:.4f}-{r['high']:.4f} | {r['wall_s']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), help="which sets (default: all)")
    parser.add_argument("--columns", nargs="+", default=["recipe", "old"], choices=COLUMNS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="*", default=[], metavar="SET=DIR", help="another folder for a set")
    parser.add_argument("--records", type=Path, default=RECORDS, help="one JSON per run (default: bench/quality/)")
    parser.add_argument("--runs", type=Path, default=Path("runs") / "quality", help="the runs' output folders")
    parser.add_argument("--lock", type=Path, default=Path("/tmp/ray.lock"), help="held while a run runs")
    parser.add_argument("--no-lock", dest="lock", action="store_const", const=None)
    parser.add_argument("--pause", type=float, default=60.0, help="seconds between runs, for the lock's others")
    parser.add_argument(
        "--recipe-code",
        choices=["old", "current"],
        default="current",
        help="run the recipe with OLD_COMMIT's code (a stable baseline while the tree changes) or this tree's",
    )
    parser.add_argument("--table", action="store_true", help="print the table of the records and exit")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for every search")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of the image sets: 1 trial of 1 epoch at 32 px, no pause"
    )
    args = parser.parse_args(argv)
    args.sets_table = dict(SETS)
    if args.quick:
        args.extra = [*QUICK, *args.extra]
        args.pause = 0
        args.sets_table = {name: DataSet(**{**ds.__dict__, "recipe_epochs": 1}) for name, ds in SETS.items()}
    for item in args.data:
        name, _, folder = item.partition("=")
        if name not in SETS or not folder:
            parser.error(f"--data takes SET=DIR with SET one of {', '.join(SETS)}, got {item!r}")
        args.sets_table[name] = DataSet(**{**args.sets_table[name].__dict__, "data": Path(folder).resolve()})
    unknown = [name for name in args.sets if name not in SETS]
    if unknown:
        parser.error(f"unknown set {unknown[0]!r} (known: {', '.join(SETS)})")
    if not args.table:
        run_cells(args)
    print(f"{machine()}, {datetime.date.today().isoformat()}")
    print(table_markdown(cell_rows(args.records)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
