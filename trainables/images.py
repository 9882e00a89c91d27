"""Image data for the image tasks: find (or download) an ImageFolder tree, decode an image, split a
data set, and serve augmented batches.

Every image is decoded and resized once per data set (trainables/decoded.py) into one uint8 array
(N, 3, S, S) with S a little above the training size, so no trial or epoch ever touches a JPEG
again; a split is rows of that shared array (`ImageSplit`), and a batch copies only its own images;
augmentation (random-resized-crop, flip) runs on those tensors with torchvision.transforms.v2.
"""

import hashlib
import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from trainables import decode
from trainables.basics import UserError

HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"  # d2l's DATA_URL + hotdog.zip
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)  # (mean, std) most backbones expect
CACHE_SCALE = 1.143  # decode at 256/224 of the training size, as the ImageNet recipe resizes before cropping


@dataclass
class ImageSet:
    """Decoded images of one split: uint8 (N, 3, S, S), int64 labels, class names, source paths of the
    images kept, and the paths left out as unreadable (with skip_bad)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[str]
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImageSplit:
    """Some rows of a decoded data set. `images` is the whole set's uint8 array (N, 3, S, S), shared
    and read-only (a memory map, or Ray's zero-copy view of the object store): a split never copies
    it, a batch copies only its own images."""

    images: np.ndarray
    labels: torch.Tensor  # int64, this split's labels in `rows` order
    rows: np.ndarray  # this split's rows of `images`
    identity: str  # what these images are (the decode's key and the rows)
    whole: str | None = None  # what `images` is (the decode's key): keys the frozen features of all its rows

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, positions) -> torch.Tensor:
        """The uint8 images at these positions of the split (a copy of just those)."""
        return torch.from_numpy(np.ascontiguousarray(self.images[self.rows[np.asarray(positions)]]))

    def chunks(self, size: int):
        """The split's images in order, `size` at a time."""
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))

    def every_row(self) -> "ImageSplit":
        """All of `images` as a split (its labels are not needed by those who ask: left empty)."""
        return ImageSplit(self.images, torch.empty(0, dtype=torch.int64), np.arange(len(self.images)), self.whole)


def whole_split(images: np.ndarray, labels, identity: str) -> ImageSplit:
    """Every row of `images` as one split."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return ImageSplit(images, labels, np.arange(len(images)), identity, whole=identity)


def rows_of(images: np.ndarray, labels: np.ndarray, rows, identity: str) -> ImageSplit:
    """The split of `rows` (indices into the whole set), keyed by the set's identity and the rows."""
    rows = np.asarray(rows, dtype=np.int64)
    digest = hashlib.sha1(rows.tobytes()).hexdigest()[:12]
    return ImageSplit(images, torch.from_numpy(np.asarray(labels)[rows]), rows, f"{identity}:{digest}", whole=identity)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "search"


def download_hotdog(root: Path) -> Path:
    """Download and unpack d2l's hotdog.zip into `root` (checksum checked); return the tree's path."""
    target = root / "hotdog"
    if (target / "train").is_dir() and (target / "test").is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "hotdog.zip"
    try:
        with urllib.request.urlopen(HOTDOG_URL, timeout=30) as response, open(archive.with_suffix(".part"), "wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as e:
        raise UserError(
            f"no local data given and hotdog.zip could not be downloaded ({getattr(e, 'reason', e)}); "
            "pass --data DIR or set SEARCH_DATA_DIR to an ImageFolder tree with train/ and test/"
        ) from None
    archive.with_suffix(".part").replace(archive)
    sha1 = hashlib.sha1(archive.read_bytes()).hexdigest()
    if sha1 != HOTDOG_SHA1:
        archive.unlink()
        raise UserError(f"hotdog.zip checksum mismatch (got {sha1}, expected {HOTDOG_SHA1}); try again")
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    return target


def resolve_data_dir(data: str | None) -> Path:
    """--data, else $SEARCH_DATA_DIR, else d2l's hotdog set in the user cache (downloaded once)."""
    given = data or os.environ.get("SEARCH_DATA_DIR")
    path = Path(given).expanduser().resolve() if given else download_hotdog(cache_dir())
    if not path.is_dir():
        raise UserError(f"data directory {path} does not exist")
    for split in ("train", "test"):
        if not (path / split).is_dir():
            raise UserError(
                f"data directory {path} has no {split}/ folder (expected an ImageFolder tree with train/ and test/)"
            )
    return path


VAL_FOLDERS = ("val", "valid")  # a tree's own validation split, beside train/ and test/


def validation_folder(root: Path) -> Path | None:
    """root/val (or root/valid) when the tree has its own validation split: used instead of carving one."""
    return next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), None)


def list_image_folder(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[int], list[str]]:
    """Image paths and labels of an ImageFolder split (one sub-folder per class, sorted by name)."""
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise UserError(f"{root} has no class folders (expected one sub-folder of images per class)")
    if classes is not None and found != classes:
        raise UserError(f"{root} has classes {found}, but the training data has {classes}")
    if len(found) < 2:
        raise UserError(f"{root} has only one class folder ({found[0]}); a classifier needs at least two")
    paths, labels = [], []
    for label, name in enumerate(found):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise UserError(f"class folder {root / name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, labels, found


def decode_image(path: str, size: int, content: bytes | None = None) -> torch.Tensor:
    """decode.decode_array as a uint8 tensor (3, size, size): one file, upright, RGB, short side
    resized to `size`, centre-cropped; a file Pillow cannot decode raises a UserError naming it."""
    return torch.from_numpy(decode.decode_array(path, size, content))


def load_image_folder(root: Path, size: int, classes: list[str] | None = None, skip_bad: bool = False) -> ImageSet:
    """Decode a whole ImageFolder split once into an ImageSet of (N, 3, size, size) uint8 images. With
    skip_bad a file decode_image refuses is left out and listed in .skipped, so one broken photo among
    thousands does not stop a search; a class left with no image is still an error."""
    paths, labels, classes = list_image_folder(root, classes)
    decoded, kept, kept_labels, skipped, first_error = [], [], [], [], {}
    for path, label in zip(paths, labels):
        try:
            decoded.append(decode_image(path, size))  # looked up at call time: bench/datapath.py counts the calls
        except UserError as e:
            if not skip_bad:
                raise
            skipped.append(path)
            first_error.setdefault(label, str(e))
            continue
        kept.append(path)
        kept_labels.append(label)
    kept_classes = set(kept_labels)
    for label, name in enumerate(classes):
        if label in first_error and label not in kept_classes:
            n = labels.count(label)
            raise UserError(
                f"class folder {root / name} has no readable images (all {n} skipped; the first: {first_error[label]})"
            )
    return ImageSet(torch.stack(decoded), torch.tensor(kept_labels, dtype=torch.int64), classes, kept, skipped)


def cache_size(image_size: int) -> int:
    return round(image_size * CACHE_SCALE)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): `fraction` of every class goes to val, chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels.numpy()):
        idx = np.flatnonzero(labels.numpy() == label)
        rng.shuffle(idx)
        n_val = min(len(idx) - 1, max(1, round(fraction * len(idx))))  # every class on both sides
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.from_numpy(np.sort(np.concatenate(train))), torch.from_numpy(np.sort(np.concatenate(val)))


def normalize(batch: torch.Tensor, normalization: tuple = IMAGENET) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (torch's default dtype: float32 unless a test asks for float64),
    scaled to [0, 1] and normalised with the backbone's (mean, std) (ImageNet's unless given)."""
    mean = torch.tensor(normalization[0]).view(1, 3, 1, 1)
    std = torch.tensor(normalization[1]).view(1, 3, 1, 1)
    return (batch.to(torch.get_default_dtype()) / 255 - mean) / std


def train_transform(image_size: int) -> v2.Transform:
    # scale=(0.3, 1): the cached images are already close crops; d2l's 0.08 lower bound throws away
    # too much of a 64-pixel photo
    return v2.Compose([v2.RandomResizedCrop(image_size, scale=(0.3, 1.0), antialias=True), v2.RandomHorizontalFlip()])


def trivial_transform(image_size: int) -> v2.Transform:
    """train_transform, then TrivialAugmentWide (one random photometric or geometric operation of a
    random strength per image; Muller & Hutter 2021)."""
    return v2.Compose([train_transform(image_size), v2.TrivialAugmentWide()])


def eval_transform(image_size: int) -> v2.Transform:
    return v2.CenterCrop(image_size)


def flip_transform(image_size: int) -> v2.Transform:
    return v2.Compose([v2.CenterCrop(image_size), v2.RandomHorizontalFlip()])


def batches(
    split: ImageSplit,
    batch_size: int,
    transform,
    generator: torch.Generator | None = None,
    normalization: tuple = IMAGENET,
):
    """Yield (float images, labels). With a generator (training): shuffled, and each image transformed
    alone so every sample gets its own random crop. Without (evaluation): in order, whole batches."""
    shuffle = generator is not None
    labels = split.labels
    order = torch.randperm(len(labels), generator=generator) if shuffle else torch.arange(len(labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        chunk = split.take(idx.numpy())
        x = torch.stack([transform(img) for img in chunk]) if shuffle else transform(chunk)
        yield normalize(x, normalization), labels[idx]


def feature_batches(views: list[torch.Tensor], labels: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Shuffled batches of precomputed inputs: `views` holds one tensor per augmented view of every
    example (e.g. the image and its mirror image); each example takes a random view each time."""
    order = torch.randperm(len(labels), generator=generator)  # the same draw as batches(), so one view == no cache
    if len(views) == 1:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield views[0][idx], labels[idx]
        return
    choice = torch.randint(len(views), (len(labels),), generator=generator)
    for start in range(0, len(order), batch_size):  # gathered per batch: the views are never copied whole
        idx = order[start : start + batch_size]
        picked, batch = choice[idx], views[0][idx]  # indexing copies: the batch is its own
        for k in range(1, len(views)):
            taken = picked == k
            if taken.any():
                batch[taken.to(batch.device)] = views[k][idx[taken]]  # the views may live on a GPU
        yield batch, labels[idx]
