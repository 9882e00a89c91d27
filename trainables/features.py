"""Frozen-prefix features, computed once and shared: frozen stages never change, so their output
for an un-augmented view of the images is the same in every trial that freezes them. The first
trial on a node computes it and saves it as a .npy file (under a lock, so a second trial waits and
maps it instead), with the torch threads of the trials waiting for it lent to it (they are idle
till it is done); every other trial on the node, in any process, maps that file. A process also
keeps recent features in RAM, bounded by FEATURE_CACHE_BYTES for every entry.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables import images
from trainables.devices import to_device

EVAL_BATCH = 256  # no gradients at evaluation, so larger batches only cost memory
# Features kept in a process's RAM, least recently used dropped first; an entry above the bound is
# never kept (it stays mapped from its file). hotdog at 160 px: ~0.9 GB for the eval, train and
# flipped-train features of both frozen depths the default space tries.
FEATURE_CACHE_BYTES = 2 * 2**30
# Feature files kept on a node's disk, least recently used removed first once their total passes this,
# or once the disk has less than KEEP_FREE_BYTES left: the cache gives way to the run's checkpoints
# and results (one session's benchmarks left 12 GB of features on a disk CI also installs on)
DISK_CACHE_BYTES = 20 * 2**30
KEEP_FREE_BYTES = 5 * 2**30
_features: OrderedDict = OrderedDict()  # per process: a reused Ray actor runs many trials


@torch.no_grad()
def embed(
    prefix: nn.Module,
    split: images.ImageSplit,
    transform,
    device,
    normalization: tuple = images.IMAGENET,
) -> torch.Tensor:
    """The frozen prefix's output for every image of `split` (in eval-sized chunks), on `device`."""
    outputs = []
    for x in split.chunks(EVAL_BATCH):
        pace()  # threads lent by trials waiting for these features
        outputs.append(prefix(to_device(images.normalize(transform(x), normalization), device)))
    return torch.cat(outputs)


@torch.no_grad()
def fingerprint(*tensors: torch.Tensor) -> tuple:
    """A cheap identity for tensors' contents: shapes, dtypes and sums (of a strided sample for big
    ones). The dtype: a float64 copy of a prefix sums as its float32 original does, and was served
    the float32 one's features in the same process."""
    return tuple((tuple(t.shape), str(t.dtype), float(t.reshape(-1)[::997].double().sum())) for t in tensors)


@contextmanager
def locked(path: Path, waiters: Path | None = None):
    """An exclusive lock on `path` among this node's processes (a trial computing features makes
    the next one wait for its file rather than compute the same thing). While it waits, a process
    is listed in the folder `waiters` (a file named by its pid, holding its torch threads)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with listed(waiters):
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def listed(waiters: Path | None):
    if waiters is None:
        yield
        return
    waiters.mkdir(parents=True, exist_ok=True)
    me = waiters / str(os.getpid())
    me.write_text(str(torch.get_num_threads()))
    try:
        yield
    finally:
        me.unlink(missing_ok=True)


def lent_threads(waiters: Path) -> int:
    """The torch threads of the live processes listed in `waiters` (a killed one's file is removed)."""
    total = 0
    for entry in waiters.glob("[0-9]*"):
        try:
            os.kill(int(entry.name), 0)
            total += int(entry.read_text() or 0)
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
        except (OSError, ValueError):  # listed as it was read, or gone since: counted next time
            continue
    return total


_computing: list[tuple[Path, int]] = []  # (waiters, own threads) while this process computes a shared array


def pace() -> None:
    """Called between the chunks of a shared computation: this process's torch threads become its
    own plus those lent by the processes waiting for the result, at most the node's CPUs. On the
    2-core test machine two trials of the default space both need the first features: the one that
    computes them had one core while the other waited: hotdog's first trial of the pair took 252 s,
    with the waiter's thread 170 s (bench/SCALE.md, session 11)."""
    if not _computing:
        return
    waiters, own = _computing[-1]
    wanted = min(os.cpu_count() or 1, own + lent_threads(waiters))
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)


def mapped(path: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only on purpose: the file is shared
        return torch.from_numpy(np.load(path, mmap_mode="r"))


def save(path: Path, features: torch.Tensor | np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, features if isinstance(features, np.ndarray) else features.numpy())
    os.replace(tmp, path)


def prune(folder: Path, limit: int = DISK_CACHE_BYTES, keep_free: int = KEEP_FREE_BYTES) -> None:
    """Remove the least recently used feature files until they total at most `limit` bytes and the
    disk has `keep_free` bytes free (or only the newest file is left)."""
    files = sorted(folder.glob("*.npy"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    limit = min(limit, total - (keep_free - shutil.disk_usage(folder).free))
    for path in files[:-1]:  # never the newest: it was just written for this trial
        if total <= limit:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        path.with_suffix(".lock").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # kept while a process is listed in it
            path.with_suffix(".waiting").rmdir()


def computed_once(root: Path, name: str, compute) -> torch.Tensor:
    """The array `compute()` returns, kept as root/NAME.npy for every process of the node: the first
    computes and saves it under a lock (a second waits, lending it its threads: see pace, which
    `compute` calls between chunks), later ones map the file."""
    root.mkdir(parents=True, exist_ok=True)
    path, waiters = root / f"{name}.npy", root / f"{name}.waiting"
    with locked(root / f"{name}.lock", waiters):
        if path.is_file():
            os.utime(path)  # recently used: kept longest by prune
        else:
            own = torch.get_num_threads()
            _computing.append((waiters, own))
            try:
                save(path, compute())
            finally:
                _computing.pop()
                torch.set_num_threads(own)
            prune(root)
    return mapped(path)


def remember(cache: OrderedDict, key, value: torch.Tensor, limit: int) -> None:
    """Keep `value` in a process's LRU `cache` unless it alone is over `limit` bytes; drop the least
    recently used entries until the cache is within `limit` again (the newest always stays)."""
    if value.nbytes <= limit:
        cache[key] = value
        while len(cache) > 1 and sum(v.nbytes for v in cache.values()) > limit:
            cache.popitem(last=False)


@dataclass(frozen=True)
class SplitFeatures:
    """A split's rows of the features of its whole data set: indexed by the split's positions (a
    batch, a slice) as the split's own features would be, and copied a batch at a time, never whole."""

    whole: torch.Tensor
    rows: torch.Tensor  # int64: the split's rows of `whole`, in the split's order

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions) -> torch.Tensor:
        return self.whole[self.rows[positions]]


def cached_embed(
    prefix: nn.Module,
    split: images.ImageSplit,
    transform,
    view: str,
    image_size: int,
    device,
    folder: str | None,
    normalization: tuple = images.IMAGENET,
) -> torch.Tensor:
    """`embed`, shared: every trial with the same frozen prefix (same weights and depth: keyed by
    its parameters and buffers, not its name) and the same images and view gets the same features,
    so only the first one on a node pays for them. They are computed for every row of the split's
    data set, so the search's train and validation splits share one computation and `search train`
    (all of train/, the same decoded set) computes none. `folder`: where the node keeps feature files
    (None: compute in this process only, as on a GPU, where the features live on the device)."""
    if split.whole is None:  # a split made by hand: the features of its own rows
        whole, rows, identity = split, torch.arange(len(split)), split.identity
    else:
        whole, rows, identity = split.every_row(), torch.from_numpy(np.asarray(split.rows, dtype=np.int64)), split.whole
    key = (view, image_size, str(device), fingerprint(*prefix.state_dict().values()), identity, len(whole))
    if normalization != images.IMAGENET:  # (ImageNet's: the keys files already have)
        key = (*key, tuple(map(tuple, normalization)))
    if key in _features:
        _features.move_to_end(key)
        return SplitFeatures(_features[key], rows)
    if folder is None or torch.device(device).type != "cpu":
        features = embed(prefix, whole, transform, device, normalization)
    else:
        name = hashlib.sha1(repr(key).encode()).hexdigest()[:24]
        features = computed_once(Path(folder), name, lambda: embed(prefix, whole, transform, device, normalization))
    remember(_features, key, features, FEATURE_CACHE_BYTES)
    return SplitFeatures(features, rows)
