"""What the image tasks (`image`, `hotdog`) do around the shared training: on the driver, decode
train/ (once per data set: trainables/decoded.py), carve the seeded, stratified validation split,
load the backbone's weights and choose how trials read the images (one copy in Ray's object store,
or mapped from the decoded file when the set is over --memory-budget); for `search train`, the
decoded train/ (with validation) and test/, a model tested and saved as a state_dict that loads
into backbones.build_model (for a torchvision network, into torchvision.models.NAME(num_classes=...)).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainables import backbones, decoded, images
from trainables.basics import UserError
from trainables.image_classifier import evaluate_model
from trainables.settings import trial_settings
from trainables.task import FinalData, Prepared

DEFAULT_MAX_EPOCHS = 8  # hotdog's best trials peak within 2-6 epochs; the plateau rule ends most earlier
# The decoded set goes through Ray's object store (one copy per node) up to this share of the
# node's RAM, the object store's own default size; above it (or --memory-budget), trials map it
# from the decoded file instead and the OS pages it in and out.
MEMORY_SHARE = 0.3


@dataclass(frozen=True)
class ImageModel:
    """The image task's part of TrialSettings: the network to start from."""

    backbone: str  # the network a configuration's backbone "auto" means (a name of backbones.BACKBONES)
    image_size: int  # training resolution
    num_classes: int
    # backbone name -> its pretrained state_dict, for every backbone trials may use; None: random
    weights: dict | None = field(default=None, repr=False)
    cache_frozen: bool = True  # reuse frozen stages' outputs across epochs and trials (bench/ turns it off)
    features_dir: str | None = None  # where a node keeps frozen features for every trial (None: per process)


def default_image_size() -> int:
    # 224: the ImageNet size the backbones were trained at. On a CPU, 160: measured on hotdog (64 px
    # photos, MobileNetV2, head-only training on the train split, scored on test/ over epochs 2-10):
    # 0.82-0.865 at 128 px, 0.855-0.868 at 160, no better at 224 for twice the cost of 160.
    return 224 if torch.cuda.is_available() else 160


def data_dir(data: str | None, default: Callable[[], Path] | None) -> Path:
    """--data, else $SEARCH_DATA_DIR, else the task's own default data (hotdog: d2l's download)."""
    given = data or os.environ.get("SEARCH_DATA_DIR")
    if not given and default is None:
        raise UserError(
            "no data given: pass --data DIR (an ImageFolder tree with train/ and test/, one "
            "sub-folder per class) or set SEARCH_DATA_DIR"
        )
    return images.resolve_data_dir(given or str(default()))


def memory_budget(given: float | None) -> int:
    """Bytes of decoded images a search may keep in RAM: --memory-budget, else MEMORY_SHARE of RAM."""
    return int(given) if given else int(MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def prepare_image_data(
    root: Path,
    image_size: int,
    val_fraction: float,
    seed: int,
    skip_bad: bool = False,
    cache: Path | None = None,
    budget: int | None = None,
) -> tuple[dict, dict]:
    """Decode the train/ split (or map it from the cache) and carve the seeded, stratified validation
    split out of it. Returns (data for the trials, facts for the user and best.yaml); the data holds
    the images themselves, or with more of them than `budget` bytes the decoded file's path. test/
    is only checked here."""
    cache = cache or decoded.cache_base()
    val_root = images.validation_folder(root)  # the tree's own val/: decoded with train/ as one set
    train = decoded.decode_split(
        root / "train", images.cache_size(image_size), skip_bad=skip_bad, cache_root=cache / "decoded", also=val_root
    )
    images.list_image_folder(root / "test", train.classes)  # fail now, not after the search
    labels = torch.from_numpy(train.labels)
    if val_root is None:
        train_idx, val_idx = images.stratified_split(labels, val_fraction, seed)
    else:  # its rows are the validation split, as they are
        in_val = torch.tensor([Path(path).is_relative_to(val_root) for path in train.paths])
        train_idx, val_idx = torch.nonzero(~in_val).flatten(), torch.nonzero(in_val).flatten()
    counts = torch.bincount(labels, minlength=len(train.classes)).tolist()
    stream = train.images.nbytes > (budget if budget is not None else memory_budget(None))
    facts = {
        "data": str(root),
        "classes": train.classes,
        "train_images": len(train_idx),
        "val_images": len(val_idx),
        "val_from": f" (its {val_root.name}/ folder)" if val_root else "",
        "class_counts": dict(zip(train.classes, counts)),
        "skipped": train.skipped,
        "decoded_bytes": train.images.nbytes,
        "streamed": stream,
        "cache": str(cache),
    }
    shipped = str(train.file) if stream else train.images.view(np.ndarray)  # a view: Ray copies it into its store
    data = {
        "images": shipped,
        "labels": train.labels,
        "train_idx": train_idx.numpy(),
        "val_idx": val_idx.numpy(),
        "key": train.key,
    }
    return data, facts


def load_image_weights(backbone: str, pretrained: bool) -> tuple[str, dict | None, str]:
    if backbone != "auto":
        backbones.spec(backbone)  # an unknown name: one line listing the known ones
    return backbones.choose_backbone(backbone, pretrained)


def space_backbones(options) -> list[str]:
    """The backbones a search's space may choose (besides "auto"): those of --space's `backbone`
    entry, or of the space chosen from the data, so their weights load (or are refused) up front."""
    import yaml

    if options.space:
        try:
            raw = yaml.safe_load(Path(options.space).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return []  # load_space has already said what is wrong with it
        entry = raw.get("backbone") if isinstance(raw, dict) else None
        values = entry.get("choice", []) if isinstance(entry, dict) else [entry] if entry else []
    else:
        from trainables import image_space

        values = image_space.offered_backbones(options)
    return [v for v in values if isinstance(v, str) and v != "auto"]


def load_space_weights(options, default: str, weights: dict | None) -> tuple[dict | None, list[str]]:
    """{name: state_dict} for `default` and every backbone of the space (None without pretraining),
    and a line per extra backbone saying where its weights came from."""
    if weights is None:
        return None, []
    found, lines = {default: weights}, []
    for name in space_backbones(options):
        if name not in found:
            found[name], source = backbones.pretrained_weights(backbones.spec(name).name)
            lines.append(f"backbone {name} (searched), weights: {source}")
    return found, lines


def prepare_search(task, options, default_data: Callable[[], Path] | None = None) -> Prepared:
    """Everything the trials of an image search share: settings (with the weights), decoded data,
    and the record that goes into best.yaml."""
    image_size = options.image_size or default_image_size()
    max_epochs = options.max_epochs or DEFAULT_MAX_EPOCHS
    cache = decoded.cache_base(options.storage_path)
    data, facts = prepare_image_data(
        data_dir(options.data, default_data),
        image_size,
        options.val_fraction,
        options.seed,
        skip_bad=options.skip_bad_images,
        cache=cache,
        budget=memory_budget(options.memory_budget),
    )
    backbone, weights, source = load_image_weights(options.backbone, options.pretrained)
    all_weights, weight_lines = load_space_weights(options, backbone, weights)
    counts = ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())
    how = "mapped from the decoded file (over the memory budget)" if facts["streamed"] else "in Ray's object store"
    lines = [
        f"{task.name}: {facts['data']}: {facts['train_images']} train / {facts['val_images']} validation "
        f"images{facts['val_from']} "
        f"({counts}); backbone {backbone}, weights: {source}; image size {image_size}",
        *weight_lines,
        f"decoded images: {facts['decoded_bytes'] / 2**20:.0f} MB, {how}; cache {cache}",
    ]
    if facts["skipped"]:
        lines.append(
            f"skipped {len(facts['skipped'])} unreadable image(s) (--skip-bad-images), e.g. {facts['skipped'][0]}"
        )
    model = ImageModel(backbone, image_size, len(facts["classes"]), all_weights, features_dir=str(cache / "features"))
    settings = trial_settings(
        model,
        epochs=max_epochs,
        schedule_epochs=max_epochs,
        seed=options.seed,
        patience=options.patience,
        min_delta=options.min_delta,
        cpus=options.cpus_per_trial,
        gpus=options.gpus_per_trial,
        amp=options.amp,
    )
    record = {  # what best.yaml carries besides the hyperparameters
        "data": facts["data"],
        "backbone": backbone,
        "pretrained": options.pretrained,
        "weights": source,
        "image_size": image_size,
        "val_fraction": options.val_fraction,
        "seed": options.seed,
        "classes": facts["classes"],
        "schedule_epochs": max_epochs,  # the learning rate decays over these
        "skip_bad_images": options.skip_bad_images,
        "skipped_images": len(facts["skipped"]),
        "cache": str(cache),  # search train maps the decoded sets from here
    }
    return Prepared(settings, data, record, "\n".join(lines))


def trial_data(data: dict) -> tuple[images.ImageSplit, images.ImageSplit]:
    """A trial's (train, evaluation): two sets of rows of the one shared decoded array (mapped from
    its file when the search streams it), never copies of it."""
    shipped = data["images"]
    array = np.load(shipped, mmap_mode="r") if isinstance(shipped, str) else shipped
    return (
        images.rows_of(array, data["labels"], data["train_idx"], data["key"]),
        images.rows_of(array, data["labels"], data["val_idx"], data["key"]),
    )


def final_data(task, doc: dict, data: str | None, pretrained: bool, with_train: bool = True) -> FinalData:
    """`search train`'s data: all of train/ (validation included) and test/, decoded at best.yaml's
    size (mapped from the search's cache when it holds them), and the backbone's weights (none
    without `pretrained`). Without `with_train` (testing a checkpoint) only test/, with best.yaml's
    classes."""
    searched = doc.get("hyperparameters", {}).get("backbone", "auto")
    backbone = doc.get("backbone", "resnet18") if searched == "auto" else searched
    try:
        backbones.spec(backbone)
    except UserError:
        raise UserError(
            f"unknown backbone {backbone!r} in best.yaml (known: {', '.join(backbones.BACKBONES)}, or timm:NAME)"
        ) from None
    image_size = doc.get("image_size") or default_image_size()
    root = images.resolve_data_dir(data or doc["data"])
    size, skip_bad = images.cache_size(image_size), doc.get("skip_bad_images", False)
    cache = Path(doc["cache"]) if doc.get("cache") else decoded.cache_base()
    train = (
        decoded.decode_split(
            root / "train", size, skip_bad=skip_bad, cache_root=cache / "decoded", also=images.validation_folder(root)
        )
        if with_train
        else None
    )
    test = decoded.decode_split(
        root / "test",
        size,
        train.classes if train else doc.get("classes"),
        skip_bad=skip_bad,
        cache_root=cache / "decoded",
    )
    weights, source = backbones.pretrained_weights(backbone) if pretrained else (None, "none (random initialisation)")
    facts = {"backbone": backbone, "pretrained": pretrained, "weights": source, "classes": test.classes}
    n_train = f"{len(train.labels)} images" if train else "no images"
    return FinalData(
        model=ImageModel(
            backbone,
            image_size,
            len(test.classes),
            {backbone: weights} if weights is not None else None,
            features_dir=str(cache / "features"),
        ),
        train=images.whole_split(train.images, train.labels, train.key) if train else None,
        test=images.whole_split(test.images, test.labels, test.key),
        describe=f"{backbone} ({source}) on {n_train}, testing on {len(test.labels)}",
        facts=facts,
    )


def load_model(final: FinalData, config: dict, state: dict) -> torch.nn.Module:
    model = backbones.build_model(final.model.backbone, final.model.num_classes, None)
    model.load_state_dict(state["model"])
    return model


def evaluate(model, final: FinalData, config: dict, device) -> dict:
    normalization = backbones.normalization(final.model.backbone)
    return evaluate_model(model, final.test, final.model.image_size, device, normalization)


def save_model(model, final: FinalData, output: Path) -> Path:
    torch.save(model.state_dict(), output / "model.pt")
    return output / "model.pt"
