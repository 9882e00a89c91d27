"""The image classification task (d2l's hotdog recipe): fine-tune a pretrained backbone with a new
head, SGD with momentum and weight decay, the head at a higher learning rate.

Frozen stages never change, so their output for an un-augmented input is computed once per node and
shared by every trial (trainables/features.py): always for evaluation, and for training when
`augment` is `none` or `flip` (two views per image). Evaluation averages the predictions for each image and its
mirror image (flip test-time augmentation: +0.5-1 point of hotdog test accuracy, measured here).
`fit_image_classifier` is the training, for trials (trainables/trial.py) and for `search train`.
"""

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from trainables import backbones, images
from trainables.basics import Hyperparameter
from trainables.devices import to_device
from trainables.features import EVAL_BATCH, cached_embed
from trainables.heads import CLASS_WEIGHTS, HEAD_INIT, PROBE_ROWS, balanced_weights, fit_head
from trainables.loop import epoch_seed, run_epochs
from trainables.settings import TrialSettings

AUGMENTATIONS = ("none", "flip", "crop+flip", "trivial")
HYPERPARAMETERS = {
    # auto: the --backbone flag's network; a space may search backbones: {choice: [...]}
    # (or several side by side, joined by "+": mobilenet_v2+efficientnet_lite0)
    "backbone": Hyperparameter(
        "auto", str, choices=("auto", *backbones.BACKBONES, f"{backbones.TIMM_PREFIX}*", f"*{backbones.JOIN}*")
    ),
    "lr": Hyperparameter(0.001, float, 1e-7, 10.0),  # for the copied layers; the head gets lr * head_lr_mult
    "batch_size": Hyperparameter(32, int, 1, 4096),
    "frozen_layers": Hyperparameter(0, int, 0, backbones.NUM_STAGES),  # 0: train everything, 5: only the head
    "head_lr_mult": Hyperparameter(10.0, float, 0.1, 1000.0),  # d2l trains the new head 10x faster
    "weight_decay": Hyperparameter(1e-3, float, 0.0, 1.0),  # d2l's hotdog value
    "momentum": Hyperparameter(0.9, float, 0.0, 0.999),
    "augment": Hyperparameter("crop+flip", str, choices=AUGMENTATIONS),  # d2l: random-resized-crop + flip
    # ---- fine-tuning regularisers; each default leaves training as d2l's recipe ----
    "label_smoothing": Hyperparameter(0.0, float, 0.0, 0.5),  # the targets' share spread over all classes
    "mixup": Hyperparameter(0.0, float, 0.0, 10.0),  # Beta(a, a) mixing of inputs and targets (0: off)
    "cutmix": Hyperparameter(0.0, float, 0.0, 10.0),  # Beta(a, a) area of a pasted box (0: off)
    "lp_epochs": Hyperparameter(0, int, 0, 1000),  # LP-FT: the head alone for this many epochs first
    "head_init": HEAD_INIT,  # probe: LP-FT's first step done exactly (heads.fit_head)
    "class_weights": CLASS_WEIGHTS,  # balanced: classes weigh alike in the loss (heads.CLASS_WEIGHTS)
    "lr_decay": Hyperparameter(1.0, float, 0.05, 1.0),  # layer-wise: each stage down gets lr times this
    "l2sp": Hyperparameter(0.0, float, 0.0, 10.0),  # L2-SP: decay copied layers toward their weights (0: off)
    "ema": Hyperparameter(0.0, float, 0.0, 0.9999),  # evaluate an average of the weights, this decay (0: off)
}


def mix(x: torch.Tensor, mixup: float, cutmix: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) of a batch with itself in a shuffled
    order: (mixed inputs, the order, the first targets' weight). With both on, each batch takes one
    at random, as timm does. Works on images and on frozen stages' feature maps alike (a box of the
    map's grid). Draws from torch's generator, which the loop reseeds every epoch."""
    order = torch.randperm(len(x), device=x.device)
    use_cutmix = cutmix > 0 and (mixup == 0 or torch.rand(()).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    if not use_cutmix:
        return lam * x + (1 - lam) * x[order], order, lam
    h, w = x.shape[-2:]
    cut_h, cut_w = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
    top, left = torch.randint(h - cut_h + 1, ()).item(), torch.randint(w - cut_w + 1, ()).item()
    x = x.clone()
    x[..., top : top + cut_h, left : left + cut_w] = x[order][..., top : top + cut_h, left : left + cut_w]
    return x, order, 1 - cut_h * cut_w / (h * w)  # the weight of the pixels actually kept


def mirror(transform):
    """`transform`, then a horizontal flip: the second view evaluation looks at."""
    return lambda x: transform(x).flip(-1)


@torch.no_grad()
def score(net: nn.Module, batches, labels: torch.Tensor, device) -> dict:
    """val_loss and val_accuracy of `net` over `batches` of (input, mirrored input) that follow
    `labels` in order; the prediction is the mean of both views' class probabilities."""
    loss, correct, start = 0.0, 0, 0
    for x, x_mirrored in batches:
        y = to_device(labels[start : start + len(x)], device)
        start += len(x)
        probs = (net(to_device(x, device)).softmax(1) + net(to_device(x_mirrored, device)).softmax(1)) / 2
        loss += F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum").item()
        correct += (probs.argmax(1) == y).sum().item()
    return {"val_loss": loss / len(labels), "val_accuracy": correct / len(labels)}


def view_batches(split: images.ImageSplit, transform, forward=lambda x: x, normalization=images.IMAGENET):
    """(view, mirrored view) of every image, in order, through `forward`, EVAL_BATCH at a time."""
    for chunk in split.chunks(EVAL_BATCH):
        yield (
            forward(images.normalize(transform(chunk), normalization)),
            forward(images.normalize(mirror(transform)(chunk), normalization)),
        )


def evaluate_model(
    model: nn.Module, split: images.ImageSplit, image_size: int, device, normalization=images.IMAGENET
) -> dict:
    """The whole model on centre-cropped images: what `search train --from-checkpoint` reports."""
    model.eval().to(device)
    batches = view_batches(split, images.eval_transform(image_size), normalization=normalization)
    return score(model, batches, split.labels, device)


@torch.no_grad()
def head_inputs(rest: nn.Module, head: nn.Linear, batches, device) -> torch.Tensor:
    """What `head` sees (its input, caught by a hook) when `rest`, in eval mode, runs each of
    `batches`, concatenated: the features a probe fits the head on."""
    seen = []
    hook = head.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    try:
        rest.eval()
        for x in batches:
            rest(to_device(x, device))
    finally:
        hook.remove()
    return torch.cat(seen)


def probe_rows(examples: int) -> torch.Tensor:
    """The training examples a probe fits, in order: all of them, or a seeded sample of PROBE_ROWS."""
    if examples <= PROBE_ROWS:
        return torch.arange(examples)
    return torch.randperm(examples, generator=torch.Generator().manual_seed(0))[:PROBE_ROWS].sort().values


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay from each group's lr to 0 over `total_steps` optimizer steps. Without it the
    head's high learning rate left hotdog's validation and test accuracy jumping 2-5 points from one
    epoch to the next (measured here), and the search chose epochs by that noise."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )


def fit_image_classifier(
    config: dict,
    settings: TrialSettings,
    train: images.ImageSplit,
    evaluation: images.ImageSplit,
    report,
    resume: dict | None = None,
) -> nn.Module:
    """Fine-tune on `train` for up to `settings.epochs`, evaluating on
    `evaluation` after each epoch and calling `report(metrics, state)` (see trainables.loop.run_epochs),
    from the checkpointed `resume` state if given. The learning rate decays over
    `settings.schedule_epochs` (the search's max epochs), so a run of fewer epochs replays a trial's
    rates. Returns the whole torchvision model."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)  # same config + seed -> same run, in a trial or in `search train`
    device = torch.device(settings.device)
    spec = settings.model
    name = spec.backbone if config["backbone"] == "auto" else config["backbone"]
    image_size, augment, normalization = spec.image_size, config["augment"], backbones.normalization(name)
    use_cache = spec.cache_frozen

    model = backbones.build_model(name, spec.num_classes, spec.weights[name] if spec.weights else None)
    parts = backbones.parts(model, name)  # nn.Sequential(*parts) computes model(x)
    n_frozen = config["frozen_layers"]
    backbones.freeze(model, name, n_frozen)
    model.to(device)
    prefix = nn.Sequential(*parts[:n_frozen]).eval()  # frozen: eval mode for good (BatchNorm keeps ImageNet stats)
    rest = nn.Sequential(*parts[n_frozen:])  # what the loop trains
    l2sp = config["l2sp"]
    optimizer = torch.optim.SGD(
        backbones.param_groups(
            model,
            name,
            config["lr"],
            config["head_lr_mult"],
            lr_decay=config["lr_decay"],
            # L2-SP: the copied layers decay toward their pretrained weights (the penalty below), not toward 0
            body_weight_decay=0.0 if l2sp > 0 else None,
        ),
        lr=config["lr"],
        momentum=config["momentum"],
        weight_decay=config["weight_decay"],
    )
    body = [p for stage in parts[n_frozen:-1] for p in stage.parameters() if p.requires_grad]
    start_point = [p.detach().clone() for p in body] if l2sp > 0 else []

    train_labels, eval_labels = train.labels, evaluation.labels
    centre = images.eval_transform(image_size)
    shared = spec.features_dir

    def features(split, transform, view):
        return cached_embed(prefix, split, transform, view, image_size, device, shared, normalization)

    eval_inputs = (
        (features(evaluation, centre, "centre"), features(evaluation, mirror(centre), "flip")) if use_cache else None
    )
    if use_cache and augment in ("none", "flip"):  # the views the shared features hold; others train on the fly
        views = [features(train, centre, "centre")]
        if augment == "flip":  # as flip_transform does
            views.append(features(train, mirror(centre), "flip"))
    else:
        views = None
        train_tf = {
            "none": centre,
            "flip": images.flip_transform(image_size),
            "crop+flip": images.train_transform(image_size),
            "trivial": images.trivial_transform(image_size),
        }[augment]

    def train_batches(epoch):
        shuffle = torch.Generator().manual_seed(epoch_seed(settings.seed, epoch))  # resumable: no state carried over
        if views is not None:
            return images.feature_batches(views, train_labels, config["batch_size"], shuffle)
        batches = images.batches(train, config["batch_size"], train_tf, shuffle, normalization)
        return ((frozen_forward(x), y) for x, y in batches)

    @torch.no_grad()
    def frozen_forward(x):
        return prefix(to_device(x, device))

    smoothing, mixup, cutmix = config["label_smoothing"], config["mixup"], config["cutmix"]
    balanced = config["class_weights"] == "balanced"
    loss_weights = balanced_weights(train_labels, spec.num_classes).to(device) if balanced else None

    def compute_loss(net, batch):
        x, y = to_device(batch[0], device), to_device(batch[1], device)
        if mixup > 0 or cutmix > 0:
            x, order, lam = mix(x, mixup, cutmix)
            logits = net(x)
            loss = lam * F.cross_entropy(logits, y, loss_weights, label_smoothing=smoothing) + (
                1 - lam
            ) * F.cross_entropy(logits, y[order], loss_weights, label_smoothing=smoothing)
        else:
            loss = F.cross_entropy(net(x), y, loss_weights, label_smoothing=smoothing)
        if l2sp > 0:
            loss = loss + l2sp / 2 * sum(((p - p0) ** 2).sum() for p, p0 in zip(body, start_point))
        return loss, len(y)

    lp_epochs, probed = config["lp_epochs"], list(parts[n_frozen:-1])

    def before_epoch(epoch):
        """LP-FT: the head alone (the unfrozen stages fixed, in eval mode) for the first lp_epochs."""
        probing = epoch <= lp_epochs
        for p in body:
            p.requires_grad_(not probing)
        return probed if probing else []

    def evaluate(net):
        if eval_inputs is not None:
            chunks = (
                (eval_inputs[0][i : i + EVAL_BATCH], eval_inputs[1][i : i + EVAL_BATCH])
                for i in range(0, len(eval_labels), EVAL_BATCH)
            )
        else:
            chunks = view_batches(evaluation, centre, frozen_forward, normalization)
        return score(net, chunks, eval_labels, device)

    def probe_views(rows: torch.Tensor):
        """For each chunk of these rows of `train`, `rest`'s inputs for its un-augmented views (the
        image and its mirror, or the one view of augment none), as evaluation sees them."""
        if views is not None:
            for start in range(0, len(rows), EVAL_BATCH):
                yield [view[rows[start : start + EVAL_BATCH]] for view in views]
        else:
            subset = dataclasses.replace(train, rows=train.rows[rows.numpy()], labels=train_labels[rows])
            for pair in view_batches(subset, centre, frozen_forward, normalization):
                yield pair[: 1 if augment == "none" else 2]

    if config["head_init"] == "probe" and resume is None:  # a resumed run's head is in its checkpoint
        # one row per image, the mean of what the head sees for its views, as evaluation averages
        # them (the probes of bench/probe.py); one chunk's views at a time, so only the mean is kept
        head, rows = backbones.head(model, name), probe_rows(len(train_labels))
        means = [sum(head_inputs(rest, head, [x], device) for x in chunk) / len(chunk) for chunk in probe_views(rows)]
        fit_head(head, torch.cat(means), train_labels[rows], config["weight_decay"], loss_weights)

    steps_per_epoch = math.ceil(len(train_labels) / config["batch_size"])
    scheduler = cosine_schedule(optimizer, steps_per_epoch * settings.schedule_epochs)
    run_epochs(
        rest,
        optimizer,
        epochs=settings.epochs,
        train_batches=train_batches,
        compute_loss=compute_loss,
        evaluate=evaluate,
        report=report,
        seed=settings.seed,
        patience=settings.patience,
        min_delta=settings.min_delta,
        saved_model=model,
        resume=resume,
        amp=settings.amp,
        scheduler=scheduler,
        before_epoch=before_epoch if lp_epochs > 0 else None,
        ema_decay=config["ema"],
    )
    return model
