"""`python -m bench.imbalance [--data ../shared/data/food20] [--seeds 0 1]`: does `class_weights:
balanced` help on classes of very different sizes? Builds three imbalanced sets from food20's photos,
runs `search` then `search train` with the chosen space given as a file, without and with the knob,
and prints each run's test accuracy and balanced accuracy (the mean recall over the classes).
Results: bench/QUALITY.md, session 14.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from trainables import image_space

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "food20"
# the space the image rule chooses for a few hundred images a class, the pair offered, and the knob off
SPACE = image_space.choose(image_space.DataFacts(1500, 10, 150, 64, 150), [image_space.PAIR])[0]
# name: (the first classes' training photos, test photos per class: a number, "all" or "prior"
# (in the training proportions, at least 2), the photos resized to this (width, height) or kept)
SETS = {
    "three": ([150, 20, 4], 5, (600, 450)),
    "ten-balanced-test": ([150, 100, 70, 50, 35, 25, 18, 12, 8, 5], "all", None),
    "ten-prior-test": ([150, 100, 70, 50, 35, 25, 18, 12, 8, 5], "prior", None),
}


def build(source: Path, root: Path, train_counts: list[int], test, size) -> Path:
    """The first len(train_counts) classes of `source`, the first photos of each in sorted order."""
    from PIL import Image

    classes = sorted(p.name for p in (source / "train").iterdir() if p.is_dir())[: len(train_counts)]
    for name, count in zip(classes, train_counts):
        available = sorted((source / "test" / name).iterdir())
        tests = {"all": len(available), "prior": max(2, round(len(available) * count / max(train_counts)))}.get(
            test, test
        )
        for split, files in (
            ("train", sorted((source / "train" / name).iterdir())[:count]),
            ("test", available[:tests]),
        ):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for f in files:
                if size is None:
                    shutil.copy(f, folder / f.name)
                else:
                    Image.open(f).convert("RGB").resize(size).save(folder / f"{f.stem}.jpg")
    return root


def run(data: Path, output: Path, space: dict, seed: int, task: str = "image", flags: tuple = ()) -> dict:
    """`search TASK` with `space` given as a file, then `search train`: the test accuracy, the balanced
    accuracy (the mean recall over the classes) and the seconds both took."""
    space_file = output.with_suffix(".yaml")
    space_file.write_text(yaml.safe_dump(space, sort_keys=False), encoding="utf-8")
    started = time.monotonic()
    search = [sys.executable, "-m", "search", task, "--data", str(data), "--output", str(output), *flags]
    for command in (
        [*search, "--seed", str(seed), "--space", str(space_file), "--no-report"],
        [sys.executable, "-m", "search", "train", str(output / "best.yaml")],
    ):
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((output / "final" / "metrics.json").read_text())
    recalls = [row["recall"] for row in metrics["test_per_class"].values()]
    return {
        "test": metrics["test_accuracy"],
        "balanced": sum(recalls) / len(recalls),
        "seconds": time.monotonic() - started,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imbalance", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir():
        print(f"bench.imbalance: no train/ in {args.data}", file=sys.stderr)
        return 2
    print("| set | seed | class_weights | test accuracy | balanced accuracy | seconds |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-imbalance-") as tmp:
        for name in args.sets:
            data = build(args.data, Path(tmp) / name, *SETS[name])
            for seed in args.seeds:
                for weights in ("none", "balanced"):
                    result = run(
                        data, Path(tmp) / f"{name}-{weights}-{seed}", {**SPACE, "class_weights": weights}, seed
                    )
                    print(
                        f"| {name} | {seed} | {weights} | {result['test']:.4f} | {result['balanced']:.4f} "
                        f"| {result['seconds']:.0f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
