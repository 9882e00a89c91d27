"""Each fine-tuning knob with vs without, same seeds: `python -m bench.knobs --data DIR [--data DIR2]`.

One fixed base configuration (a frozen prefix, the last stages fine-tuned) is trained on the train
split, scored on the validation split every epoch and on test/ at the end; each variant changes one
knob. No Ray: the project's fit on its own data path, one process, resumable run by run (rows kept
in bench/knobs/NAME.jsonl). Writes bench/KNOBS.md: per data set and variant, mean and spread over
seeds of the final validation and test accuracy, and the seconds per epoch.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from trainables import backbones, decoded, images
from trainables.basics import with_defaults
from trainables.image_classifier import HYPERPARAMETERS, evaluate_model, fit_image_classifier
from trainables.image_task import ImageModel, prepare_image_data, trial_data
from trainables.settings import trial_settings

OUT = Path(__file__).parent / "knobs"
# The base: what hotdog searches chose most (frozen_layers 3-4, lr ~5e-4, head x5-10) at a depth
# where the regularisers have copied layers to act on (stages 4-5 train).
BASE = {"frozen_layers": 3, "lr": 5e-4, "head_lr_mult": 10.0, "batch_size": 32, "weight_decay": 1e-4, "augment": "flip"}
VARIANTS = {
    "base": {},
    "label_smoothing 0.1": {"label_smoothing": 0.1},
    "mixup 0.2": {"mixup": 0.2},
    "cutmix 1.0": {"cutmix": 1.0},
    "augment trivial": {"augment": "trivial"},
    "lp_epochs 2 (LP-FT)": {"lp_epochs": 2},
    "lr_decay 0.5 (LLRD)": {"lr_decay": 0.5},
    "l2sp 0.01": {"l2sp": 0.01},
    "ema 0.99": {"ema": 0.99},
    "backbone efficientnet_lite0": {"backbone": "efficientnet_lite0"},
}


def run_one(root: Path, backbone_weights: dict, config: dict, seed: int, epochs: int, image_size: int) -> dict:
    data, facts = prepare_image_data(root, image_size, 0.2, seed=0)  # one split for every run
    train, val = trial_data(data)
    test_set = decoded.decode_split(root / "test", images.cache_size(image_size), facts["classes"])
    test = images.whole_split(test_set.images, test_set.labels, test_set.key)
    name = config["backbone"] if config["backbone"] != "auto" else "mobilenet_v2"
    model_spec = ImageModel("mobilenet_v2", image_size, len(facts["classes"]), backbone_weights, features_dir=None)
    settings = trial_settings(
        model_spec, epochs=epochs, schedule_epochs=epochs, seed=seed, patience=0, min_delta=0.0, cpus=1, gpus=0,
        amp="off",
    )  # fmt: skip
    history = []
    started = time.perf_counter()
    model = fit_image_classifier(config, settings, train, val, lambda metrics, state: history.append(metrics))
    seconds = time.perf_counter() - started
    scored = evaluate_model(model, test, image_size, "cpu", backbones.normalization(name))
    return {
        "val_accuracy": history[-1]["val_accuracy"],
        "best_val_accuracy": max(h["val_accuracy"] for h in history),
        "test_accuracy": scored["val_accuracy"],
        "epoch_seconds": seconds / epochs,
    }


def summary(rows: list[dict]) -> str:
    def cell(values):
        return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}" if values else "-"

    lines = ["| data | variant | seeds | final val_accuracy | test_accuracy | s / epoch |", "|---|---|---|---|---|---|"]
    for data in dict.fromkeys(r["data"] for r in rows):
        for variant in VARIANTS:
            mine = [r for r in rows if r["data"] == data and r["variant"] == variant]
            if mine:
                seconds = statistics.mean(r["epoch_seconds"] for r in mine)
                lines.append(
                    f"| {data} | {variant} | {len(mine)} | {cell([r['val_accuracy'] for r in mine])} | "
                    f"{cell([r['test_accuracy'] for r in mine])} | {seconds:.1f} |"
                )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--frozen-layers", type=int, default=BASE["frozen_layers"], help="the base's frozen stages")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true", help="write KNOBS.md from the runs already done")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = (
        {}
        if args.report_only
        else {n: backbones.pretrained_weights(n)[0] for n in ("mobilenet_v2", "efficientnet_lite0")}
    )
    logs = {root: args.out / f"{root.name}.jsonl" for root in args.data}
    done = {
        root: [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        for root, log in logs.items()
    }
    rows = [row for rows_of in done.values() for row in rows_of]
    for seed in [] if args.report_only else args.seeds:  # every data set's seed 0 first: both get figures early
        for root in args.data:
            for variant in args.variants:
                if any(r["variant"] == variant and r["seed"] == seed for r in done[root]):
                    continue
                base = {**BASE, "frozen_layers": args.frozen_layers}
                config = with_defaults(HYPERPARAMETERS, {**base, **VARIANTS[variant]})
                row = {"data": root.name, "variant": variant, "seed": seed, "epochs": args.epochs}
                row.update(image_size=args.image_size, frozen_layers=args.frozen_layers)
                row.update(run_one(root, weights, config, seed, args.epochs, args.image_size))
                rows.append(row)
                with open(logs[root], "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    text = (
        "# Fine-tuning knobs, one at a time\n\n"
        f"`python -m bench.knobs` ({args.epochs} epochs, {args.image_size} px, "
        f"base {dict(BASE, frozen_layers=args.frozen_layers)}, split seed 0, "
        "training seeds as listed; MobileNetV2 unless the variant says otherwise). Mean ± spread over seeds.\n\n"
        + summary(rows)
        + "\n"
    )
    (args.out.parent / "KNOBS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
