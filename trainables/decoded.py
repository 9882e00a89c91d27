"""Decoded images, once per data set: every image of an ImageFolder split decoded into one uint8
array (N, 3, S, S), in parallel as Ray tasks over the cluster's CPUs when Ray is up (else in this
process), and kept as a .npy file in a folder named by what was decoded (the files' paths, sizes
and modification times, the size S). A second search, `search resume` and `search train` on the
same files and size map that file instead of decoding again.
"""

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables import decode, images
from trainables.basics import UserError, is_uri

VERSION = 1  # part of every key: bump it when decode.decode_array's output changes, and old entries are ignored
CHUNK = 128  # images per decode task: ~50 ms of work for small photos, so Ray's per-task cost stays small
# Decode here, without Ray, when the first chunk says the rest takes less than this: measured here
# (session 7), Ray's first decode workers took 3-4 s to start, and 16,000 64-px photos 7 s in one
# process against 8 s as Ray tasks on 2 workers. The workers no longer import torch and 16 tasks
# per worker are now in flight (4.1 s on 2 workers, session 9); the threshold was not re-measured.
IN_PROCESS_S = 10.0
# Decode tasks in flight per worker on one node. Ray hands a worker back to the raylet whenever its
# owner has no queued task for it and leases one again for the next: with 2 per worker, 16,000
# 64-px photos on 2 workers took 5.2 s and 9.3 CPU-seconds (median of 4), with 16 per worker 4.1 s
# and 7.3 (one worker: 6.9 s either way). A task in flight costs only its 128 paths here; on a
# cluster each carries its files' bytes, so there 2 per worker bound the driver's memory.
IN_FLIGHT = 16
SHIPPED_IN_FLIGHT = 2
PROGRESS_S = 5.0  # seconds between progress lines when the output is not a terminal


@dataclass(frozen=True)
class Decoded:
    """One decoded split: `images` is a read-only memory map of the cached file."""

    images: np.ndarray  # uint8 (N, 3, S, S)
    labels: np.ndarray  # int64 (N,)
    classes: list[str]
    paths: list[str]  # the files decoded, in row order
    skipped: list[str]  # files left out (skip_bad), unreadable
    key: str  # what was decoded: names the cache folder
    file: Path  # images.npy, for trials that map it themselves


def cache_base(storage_path: str | None = None) -> Path:
    """Where a node keeps decoded sets (decoded/) and frozen features (features/): a local
    --storage-path's cache/ (every node sees it), else $SEARCH_CACHE_DIR, else the user cache
    (~/.cache/search)."""
    if storage_path and not is_uri(storage_path):
        return Path(storage_path) / "cache"
    given = os.environ.get("SEARCH_CACHE_DIR")
    return Path(given).expanduser() if given else images.cache_dir()


def cache_key(paths: list[str], labels: list[int], classes: list[str], size: int, skip_bad: bool) -> str:
    """A name for exactly this decode: the files (path, size, modification time), their labels, the
    size and whether bad files are skipped. Stat, not a hash of the bytes: reading every file to
    learn that nothing changed would cost a good part of decoding it."""
    digest = hashlib.sha256(json.dumps([VERSION, size, skip_bad, classes]).encode())
    for path, label in zip(paths, labels):
        stat = os.stat(path)
        digest.update(f"\n{path}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


class Progress:
    """`decoding NAME: done/total images, rate, time left`: rewritten in place on a terminal, a line
    every PROGRESS_S seconds otherwise, and a last line when done."""

    def __init__(self, name: str, total: int, quiet: bool = False):
        self.name, self.total, self.quiet = name, total, quiet
        self.started = self.shown = time.monotonic()
        self.live = sys.stdout.isatty()

    def update(self, done: int) -> None:
        now = time.monotonic()
        # nothing until 5% is done: the first tasks pay for starting Ray's workers, and a rate
        # measured over them alone would overstate the time left
        if self.quiet or done < self.total / 20 or (not self.live and now - self.shown < PROGRESS_S):
            return
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        left = (self.total - done) / rate if rate else float("inf")
        line = f"decoding {self.name}: {done}/{self.total} images, {rate:.0f}/s, {left:.0f}s left"
        print(f"\r{line}  " if self.live else line, end="" if self.live else "\n", flush=True)

    def finish(self, workers: int) -> float:
        seconds = time.monotonic() - self.started
        if not self.quiet:
            rate = self.total / max(seconds, 1e-9)
            print(
                f"{chr(13) if self.live else ''}decoded {self.name}: {self.total} images in {seconds:.1f}s "
                f"({rate:.0f}/s, {workers} worker(s))",
                flush=True,
            )
        return seconds


def decode_into(out: np.ndarray, paths: list[str], size: int, progress: Progress, workers: int | None) -> dict:
    """Decode every path into the rows of `out`; returns {row: error line}. The first chunk is
    decoded here, and times the rest: a set this process decodes within IN_PROCESS_S stays here
    (starting Ray's workers, each importing torch, costs more); a longer one, or any with `workers`
    given, goes to Ray tasks when Ray is up (`workers` at once; None: one per CPU of the cluster)."""
    import ray

    chunks = [(start, paths[start : start + CHUNK]) for start in range(0, len(paths), CHUNK)]
    errors = {}

    def keep(start, decoded_chunk, found):
        if decoded_chunk is not None:  # None: the task wrote its rows into the file itself
            out[start : start + len(decoded_chunk)] = decoded_chunk
        errors.update({start + i: message for i, message in found.items()})

    started = time.perf_counter()
    if workers is None or not ray.is_initialized():
        keep(chunks[0][0], *decode.decode_chunk(chunks[0][1], size))
        chunks = chunks[1:]
        left = (time.perf_counter() - started) * len(chunks)
        if not ray.is_initialized() or left < IN_PROCESS_S:
            for start, part in chunks:
                keep(start, *decode.decode_chunk(part, size))
                progress.update(start + len(part))
            progress.finish(1)
            return errors
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = min(workers or cpus, cpus)
    # Each task asks for its share of the CPUs, so no more than `workers` run at once; more are in
    # flight (IN_FLIGHT), so a worker never waits for the driver to hand it the next chunk.
    task = ray.remote(num_cpus=cpus / workers)(decode.decode_chunk)
    # Another node may not see the driver's files: on a cluster the driver reads them and the task
    # decodes the bytes (reading is cheap next to decoding) and sends the pixels back; on one node
    # the task reads the files and writes its rows into the driver's file itself (`into`), so
    # neither the object store nor the driver copies pixels (the driver shares the 2 CPUs here).
    ship = sum(node["Alive"] for node in ray.nodes()) > 1
    into = None if ship or not isinstance(out, np.memmap) else str(out.filename)
    pending, queue, done = {}, list(chunks), len(paths) - sum(len(part) for _, part in chunks)
    while queue or pending:
        while queue and len(pending) < (SHIPPED_IN_FLIGHT if ship else IN_FLIGHT) * workers:
            start, part = queue.pop(0)
            contents = [Path(path).read_bytes() for path in part] if ship else None
            pending[task.remote(part, size, contents, into, start)] = (start, len(part))
        ready, _ = ray.wait(list(pending), num_returns=1)
        start, n = pending.pop(ready[0])
        keep(start, *ray.get(ready[0]))
        done += n
        progress.update(done)
    progress.finish(workers)
    return errors


def decode_split(
    root: Path,
    size: int,
    classes: list[str] | None = None,
    skip_bad: bool = False,
    cache_root: Path | None = None,
    workers: int | None = None,
    quiet: bool = False,
    also: Path | None = None,
) -> Decoded:
    """The decoded split `root` (an ImageFolder split: one sub-folder per class) at `size`, from the
    cache when it holds it, else decoded and cached. A file decode_image refuses stops it with that
    one line, or with `skip_bad` is left out and listed; a class left with no image is an error.
    `also`: a second split of the same classes (a tree's own val/), decoded after root's as rows of
    the same set (its rows are those whose paths lie under it)."""
    paths, labels, classes = images.list_image_folder(root, classes)
    if also is not None:
        more, more_labels, _ = images.list_image_folder(also, classes)
        paths, labels = paths + more, labels + more_labels
    key = cache_key(paths, labels, classes, size, skip_bad)
    folder = (cache_root or cache_base() / "decoded") / key
    if not (folder / "meta.json").is_file():
        build(folder, root, paths, labels, classes, size, skip_bad, workers, quiet)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return Decoded(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        labels=np.load(folder / "labels.npy"),
        classes=meta["classes"],
        paths=meta["paths"],
        skipped=meta["skipped"],
        key=key,
        file=folder / "images.npy",
    )


def build(folder, root, paths, labels, classes, size, skip_bad, workers, quiet) -> None:
    """Decode into a temporary folder beside `folder`, then rename it into place, so a decode that
    is interrupted (or runs twice at once) never leaves a half-written entry."""
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        out = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(paths), 3, size, size)
        )
        errors = decode_into(out, paths, size, Progress(f"{root.name}/", len(paths), quiet), workers)
        if errors and not skip_bad:
            raise UserError(errors[min(errors)])
        kept = [i for i in range(len(paths)) if i not in errors]
        check_classes(root, classes, labels, kept, errors)
        if errors:  # rare: rewrite without the holes
            compact = np.lib.format.open_memmap(
                tmp / "kept.npy", mode="w+", dtype=np.uint8, shape=(len(kept), 3, size, size)
            )
            for start in range(0, len(kept), 1024):
                compact[start : start + 1024] = out[kept[start : start + 1024]]
            compact.flush()
            del out, compact
            os.replace(tmp / "kept.npy", tmp / "images.npy")
        else:
            out.flush()
            del out
        np.save(tmp / "labels.npy", np.asarray([labels[i] for i in kept], dtype=np.int64))
        meta = {
            "version": VERSION,
            "root": str(root),
            "size": size,
            "classes": classes,
            "paths": [paths[i] for i in kept],
            "skipped": [paths[i] for i in sorted(errors)],
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process cached the same set meanwhile: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_classes(root: Path, classes: list[str], labels: list[int], kept: list[int], errors: dict) -> None:
    """A class whose every image was skipped is an error naming its folder and its first problem."""
    left = {labels[i] for i in kept}
    for label, name in enumerate(classes):
        if label not in left:
            rows = [i for i, value in enumerate(labels) if value == label]
            raise UserError(
                f"class folder {root / name} has no readable images "
                f"(all {len(rows)} skipped; the first: {errors[rows[0]]})"
            )
