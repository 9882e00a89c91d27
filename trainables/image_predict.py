"""The image tasks' saved model at work: model.yaml's preprocessing, predictions on image files,
folders or globs (decoded, cropped and mirror-averaged exactly as `search train` tests, so predicting
test/ gives metrics.json's test_accuracy), per-class test scores, and the graph `search export`
traces (the network's logits for normalised centre crops).
"""

import sys
from pathlib import Path

import torch

from trainables import backbones, images
from trainables.basics import UserError
from trainables.class_scores import per_class
from trainables.devices import to_device
from trainables.task import Exportable

PREDICT_BATCH = 256  # images per forward pass: the evaluation's chunk, so predictions match test scores


def preprocessing(final, config: dict) -> dict:
    """What model.yaml says about turning a file into the network's input."""
    size = final.model.image_size
    return {
        "backbone": final.model.backbone,
        "image_size": size,
        "decode_size": images.cache_size(size),
        "decode": "RGB (transparency on white), EXIF upright, short side resized to decode_size (bilinear), "
        "centre square crop",
        "crop": "centre image_size x image_size",
        "scale": "pixels / 255",
        "mean": list(backbones.normalization(final.model.backbone)[0]),
        "std": list(backbones.normalization(final.model.backbone)[1]),
        "prediction": "mean of the softmax of the crop and of its mirror image",
    }


def load(folder: Path, info: dict, device) -> torch.nn.Module:
    model = backbones.build_model(info["backbone"], len(info["classes"]), None)
    path = folder / info["model_file"]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError) as e:
        raise UserError(f"cannot load {path}: {str(e).splitlines()[0]}") from None
    return model.eval().to(device)


@torch.no_grad()
def mirror_probabilities(
    model, uint8_images: torch.Tensor, image_size: int, device, normalization=images.IMAGENET
) -> torch.Tensor:
    """Class probabilities: the mean of the centre crop's and its mirror image's (the evaluation's)."""
    crop = images.eval_transform(image_size)(uint8_images)
    views = (images.normalize(crop, normalization), images.normalize(crop.flip(-1), normalization))
    return sum(model(to_device(x, device)).softmax(1) for x in views).cpu() / 2


def image_files(inputs: list[str]) -> list[str]:
    """Every input file, and every image under an input folder (recursively, sorted)."""
    found = []
    for given in inputs:
        path = Path(given).expanduser()
        if path.is_dir():
            inside = sorted(
                str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES
            )
            if not inside:
                raise UserError(f"{path} holds no images ({', '.join(sorted(images.IMAGE_SUFFIXES))})")
            found += inside
        elif path.is_file():
            found.append(str(path))
        else:
            raise UserError(f"no such file or folder: {given}")
    return found


def predict(folder: Path, info: dict, inputs: list[str], options: dict, device) -> list[dict]:
    """One row per image: its path, the predicted class and each class's probability."""
    files = image_files(inputs)
    model, prep, classes = load(folder, info, device), info["preprocessing"], info["classes"]
    batch = options.get("batch_size") or PREDICT_BATCH
    rows = []
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        decoded = torch.stack([images.decode_image(path, prep["decode_size"]) for path in chunk])
        normalization = (tuple(prep.get("mean", images.IMAGENET_MEAN)), tuple(prep.get("std", images.IMAGENET_STD)))
        probs = mirror_probabilities(model, decoded, prep["image_size"], device, normalization)
        for path, p in zip(chunk, probs.tolist()):
            rows.append({"path": path, "predicted": classes[max(range(len(p)), key=p.__getitem__)]})
            rows[-1].update({f"prob_{name}": value for name, value in zip(classes, p)})
        if len(files) > batch:
            print(f"predict: {len(rows)}/{len(files)} images", file=sys.stderr, flush=True)
    return rows


def class_report(model, final, config: dict, device) -> dict:
    """Per-class precision, recall, F1 and the confusion matrix on the test split (for metrics.json)."""
    split, predicted = final.test, []
    for chunk in split.chunks(PREDICT_BATCH):
        probs = mirror_probabilities(
            model.eval(), chunk, final.model.image_size, device, backbones.normalization(final.model.backbone)
        )
        predicted += probs.argmax(1).tolist()
    return per_class(split.labels.tolist(), predicted, final.facts["classes"])


def export_graph(folder: Path, info: dict) -> Exportable:
    """The network on normalised centre crops (batch, 3, size, size) -> logits; the batch may vary."""
    size = info["preprocessing"]["image_size"]
    generator = torch.Generator().manual_seed(0)
    return Exportable(
        module=load(folder, info, "cpu"),
        inputs=(torch.randn(2, 3, size, size, generator=generator),),
        check_inputs=(torch.randn(3, 3, size, size, generator=generator),),
        input_names=("image",),
        output_name="logits",
        dynamic={"image": {0: "batch"}},
    )
