"""`search train best.yaml`: train the chosen configuration once more, on train + validation, for
the epochs the search found best, then report accuracy on the held-out test/ split (the only place
test/ is read). Writes model.pt (a state_dict) and metrics.json.
"""

import json
import time
from pathlib import Path

import torch

from search.errors import UserError
from search.results import package_versions, retraining, write_atomic
from search.image_task import default_image_size
from trainables import backbones, checkpoints, images
from trainables.image_classifier import evaluate_model, fit_image_classifier


def train_best_config(doc: dict, output: Path, data: str | None = None, pretrained: bool | None = None,
                      epochs: int | None = None, checkpoint: Path | None = None, seed: int | None = None) -> dict:
    """Train `doc` (a validated best.yaml) and evaluate on test/; returns the metrics written.
    With `checkpoint` (the best trial's), skip training: test the model saved there. `seed` replaces
    the search's seed for the training only (initialisation, order, augmentation)."""
    pretrained = doc.get("pretrained", True) if pretrained is None else pretrained
    run = retraining(doc, epochs, seed)
    epochs = run["epochs"]
    backbone = doc.get("backbone", "resnet18")
    if backbone not in backbones.BACKBONES:
        raise UserError(f"unknown backbone {backbone!r} in best.yaml (known: {', '.join(backbones.BACKBONES)})")
    image_size = doc.get("image_size") or default_image_size()
    root = images.resolve_data_dir(data or doc["data"])
    output = output.expanduser().resolve()
    output.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if checkpoint is not None:
        test = images.load_image_folder(root / "test", images.cache_size(image_size), doc.get("classes"))
        return test_checkpoint(doc, checkpoint, output, test, backbone, image_size, device)
    train = images.load_image_folder(root / "train", images.cache_size(image_size))
    test = images.load_image_folder(root / "test", images.cache_size(image_size), train.classes)
    weights, source = backbones.pretrained_weights(backbone) if pretrained else (None, "none (random initialisation)")

    print(f"{doc['task']}: training {backbone} ({source}) on {len(train.labels)} images for {epochs} epochs, "
          f"testing on {len(test.labels)}", flush=True)
    history = []

    def report(metrics: dict, state) -> None:
        row = {k.replace("val_", "test_"): v for k, v in metrics.items() if k != "stop"}
        history.append(row)
        print(f"epoch {row['epoch']}/{epochs}  train_loss {row['train_loss']:.4f}  test_loss {row['test_loss']:.4f}  "
              f"test_accuracy {row['test_accuracy']:.4f}  ({row['epoch_seconds']:.0f}s)", flush=True)

    settings = {"backbone": backbone, "image_size": image_size, "num_classes": len(train.classes),
                "seed": run["seed"], "threads": torch.get_num_threads(), "min_delta": 0.0,
                "device": device, "schedule_epochs": run["schedule_epochs"]}
    started = time.monotonic()
    # patience=0: test/ only measures here, it never decides when to stop
    model = fit_image_classifier(doc["hyperparameters"], settings, (train.images, train.labels),
                                 (test.images, test.labels), weights, report, epochs=epochs, patience=0)
    torch.save(model.state_dict(), output / "model.pt")
    metrics = {
        "task": doc["task"], "test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"],
        "epochs": epochs, "seed": settings["seed"], "backbone": backbone, "pretrained": pretrained, "weights": source,
        "classes": train.classes, "hyperparameters": doc["hyperparameters"], "seconds": time.monotonic() - started,
        "history": history, "versions": package_versions(),
    }
    write_atomic(output / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"test_accuracy {metrics['test_accuracy']:.4f}; wrote {output / 'model.pt'} and {output / 'metrics.json'}")
    return metrics


def test_checkpoint(doc: dict, checkpoint: Path, output: Path, test, backbone: str, image_size: int, device: str) -> dict:
    """Test the model of a trial checkpoint (trained on the train split only) without retraining."""
    try:
        state = checkpoints.load_state(checkpoint)
    except (OSError, RuntimeError) as e:
        raise UserError(f"cannot load checkpoint {checkpoint}: {e}") from None
    model = backbones.build_model(backbone, len(test.classes), None)
    model.load_state_dict(state["model"])
    scores = evaluate_model(model, test.images, test.labels, image_size, device)
    torch.save(model.state_dict(), output / "model.pt")
    metrics = {"task": doc["task"], "test_accuracy": scores["val_accuracy"], "test_loss": scores["val_loss"],
               "epochs": state["epoch"], "backbone": backbone, "pretrained": doc.get("pretrained", True),
               "from_checkpoint": str(checkpoint), "classes": test.classes, "hyperparameters": doc["hyperparameters"],
               "versions": package_versions()}
    write_atomic(output / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"{doc['task']}: tested the checkpoint {checkpoint} (epoch {state['epoch']}): "
          f"test_accuracy {metrics['test_accuracy']:.4f}; wrote {output / 'model.pt'} and {output / 'metrics.json'}")
    return metrics
