"""`python -m bench.scale [--sizes 1000 4000 16000 64000] [--image-size 64] [--quick]`: how an image
search's cost and memory grow with the data, the first round's data path (serial decode, a torch
tensor through the object store, train/validation copies per trial) against today's (Ray-task
decode into a cached array, one shared copy per node, rows indexed per batch), in the same run.
Synthetic ImageFolders of random smooth JPEGs; writes bench/SCALE.md and bench/scale.png.
"""

import argparse
import datetime
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from PIL import Image

from search.session import configure_ray_env
from trainables import decoded, image_task, images

REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
SOURCE_PX = 64  # small source photos keep generation and decoding cheap at every N
BATCH = 64
STEPS = 20  # training batches timed per epoch measurement: seconds per image, whatever N
# Decode-stage timings repeated, 1 and 2 workers alternating, and the median kept: one timing moved
# 15-20% between runs of the same code here (bench/SCALE.md, session 9), as much as the effect measured.
DECODE_REPEATS = 3


def make_folder(root: Path, n: int, seed: int = 0, split: str = "train", classes: int = CLASSES) -> Path:
    """`n` JPEGs in CLASSES class folders: 8x8 random colours upsampled (smooth, like photos at
    this size, and as cheap to decode), every class a little tinted so a model could learn it."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % classes
        folder = root / split / f"class{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 200, (8, 8, 3), dtype=np.uint8)
        pixels[..., label % 3] += 50
        Image.fromarray(pixels).resize((SOURCE_PX, SOURCE_PX), Image.BILINEAR).save(folder / f"{i}.jpg", quality=85)
    return root


def memory() -> dict:
    """This process's resident and private (not shared with other processes) memory, MB."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1]) / 1024
    return {
        "rss": fields.get("Rss", 0.0),
        "private": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0),
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


@ray.remote(num_cpus=1, max_calls=1)  # a fresh process each time, as a trial's first use of the data
def trial_footprint(refs: list, path: str) -> dict:
    """What a trial holds after getting the data and reading every training image once (an epoch's
    worth of batches), model and features aside: the increase in its resident and private memory.
    The data comes as a reference in a list, so Ray hands it over only when asked, after `before`."""
    before = memory()
    data = ray.get(refs[0])
    if path == "old":  # the first round: a torch tensor (copied out of the store), then two copies
        train = (data["images"][data["train_idx"]], data["labels"][data["train_idx"]])
        evaluation = (data["images"][data["val_idx"]], data["labels"][data["val_idx"]])
        for start in range(0, len(train[1]), BATCH):
            images.normalize(train[0][start : start + BATCH])
        del evaluation
    else:
        train, _ = image_task.trial_data(data)
        for chunk in train.chunks(BATCH):
            images.normalize(chunk)
    after = memory()
    return {"rss": after["rss"] - before["rss"], "private": after["private"] - before["private"], "peak": after["peak"]}


def epoch_seconds(split: images.ImageSplit, frozen: int, image_size: int) -> float:
    """Seconds per training image of MobileNetV2 (random weights: speed only) with `frozen` stages."""
    from trainables import backbones

    torch.set_num_threads(1)
    model = backbones.build_model("mobilenet_v2", CLASSES, None)
    backbones.freeze(model, "mobilenet_v2", frozen)
    parts = backbones.parts(model, "mobilenet_v2")
    prefix, rest = torch.nn.Sequential(*parts[:frozen]).eval(), torch.nn.Sequential(*parts[frozen:])
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    transform = images.flip_transform(image_size)
    started, seen = time.perf_counter(), 0
    for step, (x, y) in enumerate(images.batches(split, BATCH, transform, torch.Generator().manual_seed(0))):
        if step == STEPS:
            break
        with torch.no_grad():
            x = prefix(x)
        loss = torch.nn.functional.cross_entropy(rest(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    return (time.perf_counter() - started) / max(seen, 1)


def decode_rates(root: Path, size: int, work: Path, repeats: int = DECODE_REPEATS) -> dict:
    """Images per second of the decode stage alone (decoded.decode_into: Ray tasks writing rows into
    one .npy file) with 1 and 2 workers, the median of `repeats` alternating runs on warm workers.
    The folder's listing (serial, the same for any worker count) is left out: it is timed on its
    own as `list_s`."""
    started = time.perf_counter()
    paths, _, _ = images.list_image_folder(root)
    list_s = time.perf_counter() - started
    out = np.lib.format.open_memmap(work / "rates.npy", mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size))
    seconds = {1: [], 2: []}
    decoded.decode_into(out, paths[: decoded.CHUNK * 4], size, decoded.Progress("", 1, quiet=True), 2)  # warm workers
    for repeat in range(repeats):
        for workers in (1, 2) if repeat % 2 == 0 else (2, 1):
            started = time.perf_counter()
            decoded.decode_into(out, paths, size, decoded.Progress("", len(paths), quiet=True), workers)
            seconds[workers].append(time.perf_counter() - started)
    del out
    (work / "rates.npy").unlink()
    rate = {k: len(paths) / float(np.median(v)) for k, v in seconds.items()}
    return {"list_s": list_s, "decode_rate_1": rate[1], "decode_rate_2": rate[2]}


def measure(n: int, image_size: int, work: Path) -> dict:
    root = make_folder(work / f"data-{n}", n)
    size = images.cache_size(image_size)
    started = time.perf_counter()
    old = images.load_image_folder(root / "train", size)
    old_decode = time.perf_counter() - started
    row = {"n": n, "old_decode_s": old_decode}
    for workers in (1, 2):
        cache = work / f"cache-{n}-{workers}"
        started = time.perf_counter()
        new = decoded.decode_split(root / "train", size, cache_root=cache / "decoded", workers=workers, quiet=True)
        row[f"new_decode_{workers}_s"] = time.perf_counter() - started
    started = time.perf_counter()  # the search's default: here when that is quicker, else every CPU
    decoded.decode_split(root / "train", size, cache_root=work / f"cache-{n}-auto" / "decoded", quiet=True)
    row["auto_decode_s"] = time.perf_counter() - started
    started = time.perf_counter()
    decoded.decode_split(root / "train", size, cache_root=cache / "decoded", quiet=True)
    row["cached_decode_s"] = time.perf_counter() - started
    row.update(decode_rates(root / "train", size, work))
    train_idx, val_idx = images.stratified_split(torch.from_numpy(new.labels), 0.2, 0)
    old_data = {"images": old.images, "labels": old.labels, "train_idx": train_idx, "val_idx": val_idx}
    new_data = {
        "images": new.images.view(np.ndarray),
        "labels": new.labels,
        "train_idx": train_idx.numpy(),
        "val_idx": val_idx.numpy(),
        "key": new.key,
    }
    row["store_mb"] = old.images.nbytes / 2**20  # both paths put the decoded set in the store once
    for name, data in (("old", old_data), ("new", new_data)):
        footprint = ray.get(trial_footprint.remote([ray.put(data)], name))
        row[f"{name}_trial_rss_mb"], row[f"{name}_trial_private_mb"] = footprint["rss"], footprint["private"]
    streamed = dict(new_data, images=str(new.file))
    footprint = ray.get(trial_footprint.remote([ray.put(streamed)], "new"))
    row["streamed_trial_private_mb"] = footprint["private"]
    split = images.rows_of(new.images, new.labels, train_idx.numpy(), new.key)
    row["frozen4_s_per_image"] = epoch_seconds(split, 4, image_size)
    row["unfrozen_s_per_image"] = epoch_seconds(split, 0, image_size)
    del old, old_data
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    axes[0].plot(n, [r["old_decode_s"] for r in rows], "o-", label="old: serial, torch")
    axes[0].plot(n, [r["new_decode_1_s"] for r in rows], "s-", label="new: 1 Ray worker")
    axes[0].plot(n, [r["new_decode_2_s"] for r in rows], "^-", label="new: 2 Ray workers")
    axes[0].plot(n, [r["auto_decode_s"] for r in rows], "d-", label="new: default (here if quicker)")
    axes[0].plot(n, [r["cached_decode_s"] for r in rows], "x--", label="new: cached (second search)")
    axes[0].set_title("decode seconds")
    axes[1].plot(n, [r["old_trial_private_mb"] for r in rows], "o-", label="old")
    axes[1].plot(n, [r["new_trial_private_mb"] for r in rows], "s-", label="new, object store")
    axes[1].plot(n, [r["streamed_trial_private_mb"] for r in rows], "^-", label="new, streamed from disk")
    axes[1].plot(n, [r["store_mb"] for r in rows], "k:", label="decoded set (object store, once per node)")
    axes[1].set_title("memory a trial adds (private MB)")
    axes[2].plot(n, [1e3 * r["frozen4_s_per_image"] for r in rows], "o-", label="frozen_layers 4")
    axes[2].plot(n, [1e3 * r["unfrozen_s_per_image"] for r in rows], "s-", label="frozen_layers 0")
    axes[2].set_title("training ms per image (new path)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)


def markdown(rows: list[dict], args, seconds: float) -> str:
    head = (
        "| images | decode old s | new 1 worker s | new 2 workers s | 2 vs 1 workers | new default s | cached s "
        "| decode stage img/s, 1 worker | 2 workers | 2 vs 1 | listing s | decoded MB "
        "| trial private MB old | new | streamed | frozen 4 ms/img | unfrozen ms/img |"
    )
    lines = [head, "|" + "---|" * 17]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['old_decode_s']:.1f} | {r['new_decode_1_s']:.1f} | {r['new_decode_2_s']:.1f} | "
            f"{r['new_decode_1_s'] / r['new_decode_2_s']:.2f}x | {r['auto_decode_s']:.1f} | {r['cached_decode_s']:.2f} | "
            f"{r['decode_rate_1']:.0f} | {r['decode_rate_2']:.0f} | {r['decode_rate_2'] / r['decode_rate_1']:.2f}x | "
            f"{r['list_s']:.2f} | {r['store_mb']:.0f} | "
            f"{r['old_trial_private_mb']:.0f} | {r['new_trial_private_mb']:.0f} | {r['streamed_trial_private_mb']:.0f} | "
            f"{1e3 * r['frozen4_s_per_image']:.2f} | {1e3 * r['unfrozen_s_per_image']:.2f} |"
        )
    return (
        "\n".join(
            [
                "# How cost and memory grow with the data",
                "",
                f"- command: `python -m bench.scale {' '.join(os.sys.argv[1:])}`; {datetime.date.today()}; {seconds / 60:.1f} min",
                f"- machine: {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
                f"Python {platform.python_version()}; images {SOURCE_PX} px JPEGs, {CLASSES} classes, image size "
                f"{args.image_size} (decoded at {images.cache_size(args.image_size)} px)",
                "",
                *lines,
                "",
                "![figures](scale.png)",
                "",
                "- decode: the old path decodes serially in the driver into a torch tensor; the new one into a cached .npy"
                " file, as Ray tasks (1 or 2 at once, each writing its rows into that file), or by default in the driver when its"
                " first chunk says the whole set takes under 10 s there; 'cached' is a second search on the same files.",
                f"- decode stage: images per second of the Ray tasks alone (the same file rewritten), median of {DECODE_REPEATS}"
                " runs with 1 and 2 workers alternating, workers warm; the folder's listing (serial, in every decode"
                " column above) is timed apart.",
                "- trial private MB: what one trial process adds after getting the data and reading every training image once"
                " (model and features aside): the old path copies the tensor out of the object store and then its train and"
                " validation parts; the new one maps the store's array (or the decoded file) and copies one batch at a time.",
                "- decoded MB is held once per node (the object store, or the page cache of the decoded file).",
                "- training ms per image: MobileNetV2 on the new path, the first few batches of an epoch, 1 thread.",
            ]
        )
        + "\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000, 64000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="200 and 800 images, 32 px: a minute (CI)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "SCALE.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.image_size = [200, 800], 32
    configure_ray_env(False)
    started = time.monotonic()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            rows = []
            for n in args.sizes:
                rows.append(measure(n, args.image_size, Path(tmp)))
                print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    finally:
        ray.shutdown()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, args.output.with_name("scale.png"))
    args.output.write_text(markdown(rows, args, time.monotonic() - started), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
