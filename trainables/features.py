"""Frozen-prefix features, computed once and shared: frozen stages never change, so their output
for an un-augmented view of the images is the same in every trial that freezes them. The first
trial on a node computes it and saves it as a .npy file (under a lock, so a second trial waits and
maps it instead); every other trial on the node, in any process, maps that file. A process also
keeps recent features in RAM, bounded by FEATURE_CACHE_BYTES for every entry.
"""

import fcntl
import hashlib
import os
import warnings
from collections import OrderedDict
from contextlib import contextmanager
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
# Feature files kept on a node's disk, least recently used removed first once their total passes this
DISK_CACHE_BYTES = 20 * 2**30
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
    return torch.cat(
        [prefix(to_device(images.normalize(transform(x), normalization), device)) for x in split.chunks(EVAL_BATCH)]
    )


@torch.no_grad()
def fingerprint(*tensors: torch.Tensor) -> tuple:
    """A cheap identity for tensors' contents: shapes and sums (of a strided sample for big ones)."""
    return tuple((tuple(t.shape), float(t.reshape(-1)[::997].double().sum())) for t in tensors)


@contextmanager
def locked(path: Path):
    """An exclusive lock on `path` among this node's processes (a trial computing features makes
    the next one wait for its file rather than compute the same thing)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mapped(path: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only on purpose: the file is shared
        return torch.from_numpy(np.load(path, mmap_mode="r"))


def save(path: Path, features: torch.Tensor | np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, features if isinstance(features, np.ndarray) else features.numpy())
    os.replace(tmp, path)


def prune(folder: Path, limit: int = DISK_CACHE_BYTES) -> None:
    files = sorted(folder.glob("*.npy"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for path in files[:-1]:  # never the newest: it was just written for this trial
        if total <= limit:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        path.with_suffix(".lock").unlink(missing_ok=True)


def computed_once(root: Path, name: str, compute) -> torch.Tensor:
    """The array `compute()` returns, kept as root/NAME.npy for every process of the node: the first
    computes and saves it under a lock (a second waits, then maps it), later ones map the file."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.npy"
    with locked(root / f"{name}.lock"):
        if path.is_file():
            os.utime(path)  # recently used: kept longest by prune
        else:
            save(path, compute())
            prune(root)
    return mapped(path)


def remember(cache: OrderedDict, key, value: torch.Tensor, limit: int) -> None:
    """Keep `value` in a process's LRU `cache` unless it alone is over `limit` bytes; drop the least
    recently used entries until the cache is within `limit` again (the newest always stays)."""
    if value.nbytes <= limit:
        cache[key] = value
        while len(cache) > 1 and sum(v.nbytes for v in cache.values()) > limit:
            cache.popitem(last=False)


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
    so only the first one on a node pays for them. `folder`: where the node keeps feature files
    (None: compute in this process only, as on a GPU, where the features live on the device)."""
    key = (view, image_size, str(device), fingerprint(*prefix.state_dict().values()), split.identity)
    if normalization != images.IMAGENET:  # (ImageNet's: the keys files already have)
        key = (*key, tuple(map(tuple, normalization)))
    if key in _features:
        _features.move_to_end(key)
        return _features[key]
    if folder is None or torch.device(device).type != "cpu":
        features = embed(prefix, split, transform, device, normalization)
    else:
        name = hashlib.sha1(repr(key).encode()).hexdigest()[:24]
        features = computed_once(Path(folder), name, lambda: embed(prefix, split, transform, device, normalization))
    remember(_features, key, features, FEATURE_CACHE_BYTES)
    return features
