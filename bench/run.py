"""Run every benchmark and write the results: `python -m bench [--quick] [--data DIR] [--output FILE]`.
Prepares the data and weights once (as run_search does), starts a private Ray, runs benchmarks 1-5,
prints the table of ratios and writes it with the machine, command, date and runtime to RESULTS.md.
"""

import argparse
import datetime
import importlib.metadata
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import ray

from bench import common, cpu, datapath, efficiency, frozen, overhead
from search.session import configure_ray_env
from trainables.basics import UserError
from trainables.image_task import load_image_weights, prepare_image_data
from trainables.images import resolve_data_dir

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotdog"
DEFAULT_OUTPUT = REPO / "bench" / "RESULTS.md"
BENCHMARKS = (
    ("1 Tune overhead", overhead.run),
    ("2 data path", datapath.run),
    ("3 frozen layers", frozen.run),
    ("4 search efficiency", efficiency.run),
    ("5 CPU use", cpu.run),
)


def machine() -> dict:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("torch", "torchvision", "ray", "optuna"))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "ram": f"{kb / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "versions": versions,
    }


def format_ratio(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def table(rows: list[dict]) -> str:
    lines = [
        "| # | what (ratio = measured / baseline) | baseline | measured | ratio | target | held |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["id"]):
        lines.append(
            f"| {r['id']} | {r['what']} | {r['baseline']} | {r['measured']} | {format_ratio(r['ratio'])} | {r['target']} | {r['held']} |"
        )
    return "\n".join(lines)


def results_markdown(rows: list[dict], ctx: dict, info: dict, command: str, date: str, runtime: float) -> str:
    mode = "quick" if ctx["quick"] else "full"
    facts = ctx["facts"]
    subset = f", first {ctx['budget']['per_class']} images per class of train/" if ctx["budget"]["per_class"] else ""
    loads = ", ".join(f"{name.split()[0]}: {load:.2f}" for name, load in ctx["loads"])
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"- command: `{command}`",
            f"- date: {date}; total runtime {runtime / 60:.1f} min ({mode} mode)",
            f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, no GPU used; Python {info['python']}; {info['versions']}",
            f"- data: {ctx['data_dir']}{subset} ({len(ctx['data']['labels'])} images in train/: {facts['train_images']} train / "
            f"{facts['val_images']} validation); backbone {ctx['backbone']} ({ctx['source']}); image size {ctx['image_size']} "
            "(the project's CPU default is 160 px; smaller keeps this run within its time, and the photos are 64 px)",
            f"- load average (1 min, this run's own processes included) when each benchmark started: {loads}; other jobs may have shared the CPUs, "
            "which is why every row is a ratio against a baseline measured in the same run",
            "",
            table(rows),
            "",
            "Notes:",
            "- 1a/1b: one trial, torch threads 1 on both sides; 1b's gaps exclude the first report (model build, Ray start) "
            "and, on the Tune side, include the trainable's per-epoch checkpoint (1d) and Ray's reporting. Ray starts "
            "trial processes niced (see 1a), so when other jobs compete for the CPUs a trial gets less of them than "
            "the un-niced plain run: 1c (CPU seconds of one-thread processes) is the comparison that load hardly moves.",
            "- 1f: trials of 96 images and 1 epoch, so their wall time is mostly the cost of starting a trial.",
            "- 2d: decode_image is wrapped in the driver before the data is prepared; trials receive only tensors "
            "(uint8 images, labels, split indices) through Ray's object store and never decode, so the driver's count "
            "is the search's count. The decode-every-epoch loader of 2a would decode every train/ image once per epoch "
            "in every trial.",
            "- 3a-3f: augment=none; the cached runs compute the frozen prefix once before the first epoch, which "
            "epoch_seconds leaves out and 3b/3e's whole-fit times include.",
            "- 4: (a) and (b) run with the plateau rule off (patience 0); (c) is the project's search as run_search builds "
            "it (Optuna TPE seeded, ASHA on epochs, patience 3). All three use 1 CPU per trial, 2 trials at a time, reuse_actors.",
            "- 5: the two layouts alternate. A 2-thread trial suffers most when another process wants one of the two cores: "
            "its threads wait for each other (spinning, which 5c counts as CPU time), so 5a-5c move with other jobs.",
            "",
            ctx["notes"].get("4", ""),
            "",
        ]
    )


def run_all(args: argparse.Namespace, data_dir: Path, root: Path, storage: Path) -> tuple[list[dict], dict]:
    budget = common.BUDGETS["quick" if args.quick else "full"]
    image_size = budget["image_size"]
    # a fresh decode cache: benchmark 2 counts the decodes of this very preparation
    cache = storage.parent / "cache"
    data, facts = prepare_image_data(
        resolve_data_dir(str(root)), image_size, common.VAL_FRACTION, common.SEED, cache=cache
    )
    backbone, weights, source = load_image_weights("auto", True)
    ctx = {
        "quick": args.quick,
        "budget": budget,
        "data_dir": data_dir,
        "root": root,
        "storage": storage,
        "image_size": image_size,
        "data": data,
        "facts": facts,
        "backbone": backbone,
        "weights": weights,
        "source": source,
        "notes": {},
        "loads": [],
    }
    print(
        f"bench: {facts['data']}: {facts['train_images']} train / {facts['val_images']} validation images; "
        f"backbone {backbone}; image size {image_size}",
        flush=True,
    )
    ctx["ray_init_seconds"] = common.start_ray(budget["init_reps"])  # ours: shut down below, nobody else's
    rows = []
    try:
        for name, bench in BENCHMARKS:
            ctx["loads"].append((name, common.load_average()))
            started = time.monotonic()
            rows += bench(ctx)
            print(f"bench: {name} done in {time.monotonic() - started:.0f} s", flush=True)
    finally:
        ray.shutdown()
    return rows, ctx


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark the search tool against its baselines."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="32 px, 2 epochs, 4 trials, 200 images per class: 2-3 minutes (default: full, 15-25 minutes)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"ImageFolder tree with train/ and test/ (default: {DEFAULT_DATA})",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"results file (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    data = args.data.expanduser().resolve()
    if not (data / "train").is_dir() or not (data / "test").is_dir():
        print(f"bench: {data} is not an ImageFolder tree with train/ and test/; pass --data DIR", file=sys.stderr)
        return 2
    if ray.is_initialized():
        parser.error("Ray is already running in this process; the benchmarks time their own ray.init")

    started = time.monotonic()
    configure_ray_env(False)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        # a decode cache of this run: the searches of benchmark 4 count their own decodes
        os.environ["SEARCH_CACHE_DIR"] = str(Path(tmp) / "search-cache")
        per_class = common.BUDGETS["quick" if args.quick else "full"]["per_class"]
        root = common.subset_folder(data, per_class, Path(tmp) / "data") if per_class else data
        try:
            rows, ctx = run_all(args, data, root, Path(tmp) / "tune")
        except UserError as e:
            print(f"bench: {e}", file=sys.stderr)
            return 2
    runtime = time.monotonic() - started

    command = " ".join(["python -m bench", *map(shlex.quote, argv)])
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    text = results_markdown(rows, ctx, machine(), command, date, runtime)
    output = args.output.expanduser().resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print()
    print(table(rows))
    print()
    print(ctx["notes"].get("4", ""))
    print(f"\nbench: {runtime / 60:.1f} min; wrote {output}")
    return 0
