"""Linear probes: how good each backbone's frozen features are on an ImageFolder, at a few image
sizes, with no fine-tuning at all. The pooled last-stage features (mean of the image's and its
mirror's) are standardised and fed to an L2-regularised logistic regression fitted by L-BFGS; the
weight decay is chosen on a seeded 20% of train/, then the probe is refitted on all of train/ and
scored on test/. With two or more backbones it also probes their concatenated features.

    python -m bench.probe --data ../shared/data/hotdog --backbones mobilenet_v2 efficientnet_lite0 --sizes 160 224
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainables import backbones, images

DECAYS = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1)


@torch.no_grad()
def pooled_features(model, name: str, uint8: torch.Tensor, size: int) -> torch.Tensor:
    body = torch.nn.Sequential(*backbones.stages(model, name)).eval()
    out = []
    for start in range(0, len(uint8), 64):
        x = F.interpolate(uint8[start : start + 64].float(), size=(size, size), mode="bilinear")
        x = images.normalize(x, backbones.normalization(name))  # from 0-255 values
        out.append((body(x).mean((2, 3)) + body(x.flip(3)).mean((2, 3))) / 2)
    return torch.cat(out)


def probe_accuracy(train_x, train_y, test_x, test_y, decay: float, classes: int) -> float:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(train_x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return ((test_x @ weight + bias).argmax(1) == test_y).float().mean().item()


def report(what: str, train_x, train_y, test_x, test_y, classes: int, val) -> str:
    fit, held = val
    scores = {d: probe_accuracy(train_x[fit], train_y[fit], train_x[held], train_y[held], d, classes) for d in DECAYS}
    best = max(scores, key=scores.get)
    val_acc = scores[best]
    test_acc = probe_accuracy(train_x, train_y, test_x, test_y, best, classes)
    return f"| {what} | {best:g} | {val_acc:.3f} | {test_acc:.3f} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an ImageFolder tree with train/ and test/")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "efficientnet_lite0"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--decode-size", type=int, default=64, help="decode at this size, then resize per probe")
    args = parser.parse_args(argv)
    train = images.load_image_folder(args.data / "train", args.decode_size)
    test = images.load_image_folder(args.data / "test", args.decode_size, train.classes)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))
    val = (order[len(order) // 5 :], order[: len(order) // 5])
    classes, features = len(train.classes), {}
    print("| backbone, size | weight decay (chosen on val) | val accuracy | test accuracy | feature seconds |")
    print("|---|---|---|---|---|")
    for name in args.backbones:
        state, _ = backbones.pretrained_weights(name)
        model = backbones.build_model(name, classes, state)
        for size in args.sizes:
            started = time.perf_counter()
            features[name, size] = [pooled_features(model, name, split.images, size) for split in (train, test)]
            seconds = time.perf_counter() - started
            line = report(
                f"{name} {size} px",
                features[name, size][0],
                train.labels,
                features[name, size][1],
                test.labels,
                classes,
                val,
            )
            print(f"{line} {seconds:.0f} |", flush=True)
    for size in args.sizes if len(args.backbones) > 1 else []:
        both = [torch.cat([features[name, size][k] for name in args.backbones], 1) for k in (0, 1)]
        print(f"{report(f'concatenated, {size} px', both[0], train.labels, both[1], test.labels, classes, val)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
