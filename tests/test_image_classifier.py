"""The image task's training: the frozen-prefix cache must not change what is learned, and the
trainable must respect its hyperparameters (frozen stages stay put, augment views are right)."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import make_image_folder
from trainables import backbones, features, heads, image_classifier, images
from trainables.basics import with_defaults
from trainables.features import embed
from trainables.heads import fit_head
from trainables.image_classifier import HYPERPARAMETERS, fit_image_classifier
from trainables.image_task import ImageModel
from trainables.settings import trial_settings

SIZE = 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_image_folder(tmp_path_factory.mktemp("ic"), {"train": 12, "test": 6}, size=40)
    train = images.load_image_folder(root / "train", images.cache_size(SIZE))
    test = images.load_image_folder(root / "test", images.cache_size(SIZE), train.classes)
    weights, _ = backbones.pretrained_weights("mobilenet_v2")
    return split(train, "train"), split(test, "test"), weights


def split(image_set, name):
    """An ImageSet as the split a trial gets: rows of one shared uint8 array."""
    return images.whole_split(image_set.images.numpy(), image_set.labels, f"tiny-{name}")


def fit(tiny, cache: bool, epochs: int = 2, schedule_epochs: int | None = None, features_dir=None, **config):
    train, test, weights = tiny
    settings = trial_settings(
        ImageModel("mobilenet_v2", SIZE, 2, {"mobilenet_v2": weights}, cache_frozen=cache, features_dir=features_dir),
        epochs=epochs,
        schedule_epochs=schedule_epochs or epochs,
        seed=0,
        patience=0,
        min_delta=0.0,
        cpus=1,
        gpus=0,
        amp="off",
    )
    reports = []
    model = fit_image_classifier(
        with_defaults(HYPERPARAMETERS, {"batch_size": 8, **config}),
        settings,
        train,
        test,
        lambda metrics, state: reports.append({**metrics, "lrs": state()["scheduler"]["_last_lr"]}),
    )
    return model, reports


def test_learning_rate_decays_over_the_schedule_and_a_shorter_run_replays_it(tiny):
    _, full = fit(tiny, True, epochs=3, frozen_layers=4, augment="flip", lr=0.01, head_lr_mult=10.0)
    body_lr, head_lr = full[0]["lrs"]
    assert 0 < body_lr < 0.01 and head_lr == pytest.approx(10 * body_lr)  # decaying, the head still 10x
    assert full[-1]["lrs"] == pytest.approx([0.0, 0.0], abs=1e-12)  # cosine ends at zero
    _, short = fit(tiny, True, epochs=2, schedule_epochs=3, frozen_layers=4, augment="flip", lr=0.01, head_lr_mult=10.0)
    assert [r["val_loss"] for r in short] == [r["val_loss"] for r in full[:2]]  # `search train` for 2 of 3 epochs


def test_evaluation_averages_each_image_and_its_mirror(tiny):
    train, test, weights = tiny
    model = backbones.build_model("mobilenet_v2", 2, weights).eval()
    both = image_classifier.evaluate_model(model, test, SIZE, "cpu")
    centre = images.eval_transform(SIZE)
    everything = test.take(range(len(test)))
    with torch.no_grad():
        probs = [
            model(images.normalize(view(everything))).softmax(1) for view in (centre, lambda x: centre(x).flip(-1))
        ]
    mean = (probs[0] + probs[1]) / 2
    assert both["val_accuracy"] == (mean.argmax(1) == test.labels).float().mean().item()
    assert both["val_loss"] == pytest.approx(torch.nn.functional.nll_loss(mean.log(), test.labels).item(), rel=1e-5)


@pytest.mark.parametrize("frozen_layers", [2, 5])
def test_cached_and_uncached_training_agree(tiny, frozen_layers):
    """In float64: this tiny run is chaotic in float32. With stages 3-5 training, BatchNorm in train
    mode sees 8 images on 1x1-2x2 maps, and a relative 1e-7 change to the cached features moved the
    first epoch's train loss by 0.4% and the second's by 10% (measured here). oneDNN rounds a
    convolution differently for another batch size on some CPUs, so float32 cannot tell a cache that
    changes what is learned from a kernel's rounding; float64 makes that rounding 1e-9 times smaller."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cached_model, cached = fit(tiny, True, frozen_layers=frozen_layers, augment="none")
        plain_model, plain = fit(tiny, False, frozen_layers=frozen_layers, augment="none")
    finally:
        torch.set_default_dtype(default)
    assert next(cached_model.parameters()).dtype == torch.float64
    for a, b in zip(cached, plain):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    for (name, a), b in zip(cached_model.state_dict().items(), plain_model.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), rtol=1e-6, atol=1e-9), name


def test_an_augment_the_shared_features_do_not_hold_trains_on_the_fly(tiny):
    """The shared features are of the image and its mirror: TrivialAugment's random views must still
    be drawn with the cache on (it once trained on the centre view alone)."""
    # frozen_layers 4: the float64 test above leaves its depths' features in this process's cache
    _, cached = fit(tiny, True, frozen_layers=4, augment="trivial")
    _, plain = fit(tiny, False, frozen_layers=4, augment="trivial")
    _, centre_only = fit(tiny, True, frozen_layers=4, augment="none")
    assert [r["train_loss"] for r in cached] == pytest.approx([r["train_loss"] for r in plain], rel=1e-5)
    assert cached[0]["train_loss"] != pytest.approx(centre_only[0]["train_loss"], rel=1e-3)


def test_cached_features_are_the_prefix_output_of_each_batch(tiny):
    """In float32, as trials run: the features computed once for the whole split (EVAL_BATCH at a
    time) are what the frozen prefix gives each training batch, to a kernel's rounding."""
    train, _, weights = tiny
    model = backbones.build_model("mobilenet_v2", 2, weights).eval()
    prefix = torch.nn.Sequential(*backbones.parts(model, "mobilenet_v2")[:2])
    centre = images.eval_transform(SIZE)
    cached = embed(prefix, train, centre, "cpu")
    with torch.no_grad():
        for rows in (range(8), range(8, 16), range(16, len(train))):
            batch = prefix(images.normalize(centre(train.take(rows))))
            assert torch.allclose(batch, cached[list(rows)], rtol=1e-4, atol=1e-5)


def test_trials_in_one_process_share_frozen_features(tiny, monkeypatch):
    """A reused actor's second trial with the same frozen prefix reuses the first one's features
    (same tensors), and learns exactly what a trial that computed them afresh learns."""
    features._features.clear()
    fit(tiny, True, frozen_layers=4, augment="flip", lr=0.01)
    first = list(features._features.values())
    assert len(first) == 4  # eval and train, each as is and mirrored
    _, shared = fit(tiny, True, frozen_layers=4, augment="flip", lr=0.003)
    assert all(a is b for a, b in zip(first, features._features.values()))
    features._features.clear()
    _, fresh = fit(tiny, True, frozen_layers=4, augment="flip", lr=0.003)
    assert [r["val_loss"] for r in shared] == [r["val_loss"] for r in fresh]
    one_trial = sum(f.nbytes for f in features._features.values())
    monkeypatch.setattr(features, "FEATURE_CACHE_BYTES", one_trial)  # room for one depth's features
    fit(tiny, True, frozen_layers=3, augment="flip")  # another depth: new features, the oldest dropped
    assert sum(f.nbytes for f in features._features.values()) <= one_trial
    assert not any(a is b for a in first for b in features._features.values())


def test_frozen_stages_do_not_change(tiny):
    _, _, weights = tiny
    model, _ = fit(tiny, True, frozen_layers=3, augment="crop+flip", lr=0.01)
    reference = backbones.build_model("mobilenet_v2", 2, weights)
    for trained, original in zip(
        backbones.stages(model, "mobilenet_v2")[:3], backbones.stages(reference, "mobilenet_v2")[:3]
    ):
        for (name, a), b in zip(trained.state_dict().items(), original.state_dict().values()):
            assert torch.equal(a, b), name  # weights and BatchNorm running statistics alike
    changed = [
        not torch.equal(a, b)
        for a, b in zip(
            backbones.stages(model, "mobilenet_v2")[3].parameters(),
            backbones.stages(reference, "mobilenet_v2")[3].parameters(),
        )
    ]
    assert any(changed)


def test_flip_view_is_the_mirror_of_the_centre_crop(tiny):
    train, _, weights = tiny
    model = backbones.build_model("mobilenet_v2", 2, weights).eval()
    prefix = torch.nn.Sequential(*backbones.parts(model, "mobilenet_v2")[:2])
    centre = images.eval_transform(SIZE)
    mirrored = embed(prefix, train, lambda x: centre(x).flip(-1), "cpu")  # what fit caches for augment=flip
    flip_always = images.flip_transform(SIZE)
    flip_always.transforms[1].p = 1.0  # the uncached path's random flip, made certain
    direct = prefix(images.normalize(flip_always(train.take(range(len(train))))))
    assert torch.allclose(mirrored, direct, atol=1e-5)


def test_parts_compute_the_model():
    for name in backbones.BACKBONES:
        model = backbones.build_model(name, 3, None).eval()
        x = torch.randn(2, 3, SIZE, SIZE)
        assert torch.allclose(torch.nn.Sequential(*backbones.parts(model, name))(x), model(x), atol=1e-5)


def test_features_are_computed_once_per_node_and_mapped_after(tiny, tmp_path, monkeypatch):
    """With a features folder, the first trial saves each frozen view's features and a later trial
    (another process, here a cleared in-process cache) maps the file instead of computing it, and
    learns exactly the same."""
    features._features.clear()
    _, first = fit(tiny, True, frozen_layers=4, augment="flip", lr=0.01, features_dir=str(tmp_path))
    assert len(list(tmp_path.glob("*.npy"))) == 4  # eval and train, each as is and mirrored
    features._features.clear()
    computed = []
    real_embed = features.embed
    monkeypatch.setattr(features, "embed", lambda *a: computed.append(1) or real_embed(*a))
    _, again = fit(tiny, True, frozen_layers=4, augment="flip", lr=0.01, features_dir=str(tmp_path))
    assert computed == [] and learned(again) == learned(first)
    monkeypatch.setattr(features, "FEATURE_CACHE_BYTES", 0)  # no room in RAM: every entry stays mapped only
    features._features.clear()
    _, mapped_only = fit(tiny, True, frozen_layers=4, augment="flip", lr=0.01, features_dir=str(tmp_path))
    assert learned(mapped_only) == learned(first) and len(features._features) == 0


def learned(reports):
    return [(r["train_loss"], r["val_loss"], r["val_accuracy"]) for r in reports]


# ---- the fine-tuning knobs (issue 15): each on its own, reproducible, and doing what it says ----


def test_mixup_blends_whole_inputs_and_cutmix_pastes_a_box():
    torch.manual_seed(0)
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    mixed, order, lam = image_classifier.mix(x, mixup=1.0, cutmix=0.0)
    assert 0 < lam < 1 and torch.allclose(mixed, lam * x + (1 - lam) * x[order])
    torch.manual_seed(1)
    pasted, order, kept = image_classifier.mix(x, mixup=0.0, cutmix=1.0)
    from_other = (pasted == x[order]) & (pasted != x)
    assert kept == pytest.approx(1 - from_other[0].sum().item() / 64)  # the weight is the share kept
    assert ((pasted == x) | (pasted == x[order])).all()  # every pixel is one image's or the other's


KNOBS = {
    "label_smoothing": {"label_smoothing": 0.2},
    "mixup": {"mixup": 0.4},
    "cutmix": {"cutmix": 1.0},
    "trivial": {"augment": "trivial"},
    "lp_ft": {"lp_epochs": 1},
    "llrd": {"lr_decay": 0.3},
    "l2sp": {"l2sp": 5.0},
    "ema": {"ema": 0.9},
    "probe_head": {"head_init": "probe"},
}
KNOB_BASE = {"frozen_layers": 3, "augment": "flip", "lr": 0.05, "head_lr_mult": 2.0}


@pytest.mark.parametrize("knob", KNOBS)
def test_each_knob_changes_training_and_replays_exactly(tiny, knob):
    _, base = fit(tiny, True, **KNOB_BASE)
    _, once = fit(tiny, True, **{**KNOB_BASE, **KNOBS[knob]})
    _, again = fit(tiny, True, **{**KNOB_BASE, **KNOBS[knob]})
    assert [r["val_loss"] for r in once] == [r["val_loss"] for r in again]  # same seed, same run
    assert [r["val_loss"] for r in once] != [r["val_loss"] for r in base]  # and the knob did something


def body_change(model, reference, stage_range):
    moved = 0.0
    for i in stage_range:
        for p, q in zip(backbones.stages(model, "mobilenet_v2")[i].parameters(), reference):
            moved += (p.detach() - q).pow(2).sum().item()
    return moved


def test_balanced_class_weights_change_training_of_imbalanced_data_and_replay(tiny):
    """12 cats to 3 dogs: the weighted loss (and probe) train otherwise than the plain one, the same
    way for a seed; on balanced data the weights are all 1 and change nothing."""
    train, test, weights = tiny
    labels = train.labels.tolist()
    keep = np.array([i for i, y in enumerate(labels) if y == 0] + [i for i, y in enumerate(labels) if y == 1][:3])
    imbalanced = (dataclasses.replace(train, rows=train.rows[keep], labels=train.labels[keep]), test, weights)
    knob = {**KNOB_BASE, "head_init": "probe"}
    runs = [fit(imbalanced, True, **knob, class_weights=w)[1] for w in ("none", "balanced", "balanced")]
    losses = [[r["val_loss"] for r in run] for run in runs]
    assert losses[1] == losses[2] and losses[0] != losses[1]
    _, plain = fit(tiny, True, **knob)
    _, balanced = fit(tiny, True, **knob, class_weights="balanced")
    assert [r["val_loss"] for r in plain] == [r["val_loss"] for r in balanced]


def test_lp_ft_trains_only_the_head_for_its_probe_epochs(tiny):
    _, _, weights = tiny
    start = backbones.build_model("mobilenet_v2", 2, weights)
    start_stage4 = [p.detach().clone() for p in backbones.stages(start, "mobilenet_v2")[3].parameters()]
    probed, _ = fit(tiny, True, epochs=1, **KNOB_BASE, lp_epochs=1)
    assert body_change(probed, start_stage4, [3]) == 0  # stage 4 (unfrozen) stayed put while probing
    assert not torch.equal(backbones.head(probed, "mobilenet_v2").weight, backbones.head(start, "mobilenet_v2").weight)
    tuned, _ = fit(tiny, True, epochs=2, **KNOB_BASE, lp_epochs=1)
    assert body_change(tuned, start_stage4, [3]) > 0  # then fine-tuned


def test_l2sp_keeps_the_copied_layers_near_their_pretrained_weights(tiny):
    _, _, weights = tiny
    start = backbones.build_model("mobilenet_v2", 2, weights)
    start_stage4 = [p.detach().clone() for p in backbones.stages(start, "mobilenet_v2")[3].parameters()]
    free, _ = fit(tiny, True, **KNOB_BASE, weight_decay=0.0)
    held, _ = fit(tiny, True, **KNOB_BASE, weight_decay=0.0, l2sp=50.0)
    assert body_change(held, start_stage4, [3]) < 0.5 * body_change(free, start_stage4, [3])


def test_a_searched_backbone_trains_with_its_own_weights_and_normalisation(tiny, monkeypatch):
    train, test, weights = tiny
    lite, _ = backbones.pretrained_weights("efficientnet_lite0")
    seen = []
    real = images.normalize
    monkeypatch.setattr(images, "normalize", lambda batch, norm=images.IMAGENET: seen.append(norm) or real(batch, norm))
    settings = trial_settings(
        ImageModel("mobilenet_v2", SIZE, 2, {"mobilenet_v2": weights, "efficientnet_lite0": lite}, cache_frozen=True),
        epochs=1, schedule_epochs=1, seed=0, patience=0, min_delta=0.0, cpus=1, gpus=0, amp="off",
    )  # fmt: skip
    config = with_defaults(HYPERPARAMETERS, {"backbone": "efficientnet_lite0", "frozen_layers": 4, "augment": "none"})
    model = fit_image_classifier(config, settings, train, test, lambda metrics, state: None)
    assert type(model).__name__ == "EfficientNet"
    assert torch.equal(model.conv_stem.weight, lite["conv_stem.weight"])
    assert seen and all(norm == backbones.HALF for norm in seen)


def test_a_probe_head_is_the_probe_of_the_training_views_whatever_the_augmentation(tiny):
    """head_init probe: before the first step the head solves the probe on the mean of the image's
    and its mirror's features, shared (augment flip) or computed on the fly (crop+flip)."""
    still = {"frozen_layers": 4, "lr": 1e-7, "head_lr_mult": 1.0, "momentum": 0.0, "weight_decay": 0.05}
    cached, _ = fit(tiny, True, epochs=1, augment="flip", head_init="probe", **still)
    on_the_fly, _ = fit(tiny, False, epochs=1, augment="crop+flip", head_init="probe", **still)
    xavier, _ = fit(tiny, True, epochs=1, augment="flip", **still)
    heads = [backbones.head(m, "mobilenet_v2").weight for m in (cached, on_the_fly, xavier)]
    assert torch.allclose(heads[0], heads[1], atol=1e-4)  # the same probe on both paths
    assert not torch.allclose(heads[0], heads[2], atol=1e-3)

    train, _, _ = tiny
    model = backbones.build_model("mobilenet_v2", 2, tiny[2])
    rest = torch.nn.Sequential(*backbones.parts(model, "mobilenet_v2"))
    centre = images.eval_transform(SIZE)
    everything = train.take(range(len(train)))
    head = backbones.head(model, "mobilenet_v2")
    seen = [
        image_classifier.head_inputs(rest, head, [images.normalize(t(everything))], "cpu")
        for t in (centre, image_classifier.mirror(centre))
    ]
    assert seen[0].shape == (len(train), head.in_features) and not torch.allclose(seen[0], seen[1])
    fit_head(head, (seen[0] + seen[1]) / 2, train.labels, 0.05)
    assert torch.allclose(head.weight, heads[0], atol=1e-4)  # what fit_image_classifier started from


def test_probe_rows_sample_large_sets_in_order():
    assert torch.equal(image_classifier.probe_rows(10), torch.arange(10))
    rows = image_classifier.probe_rows(3 * heads.PROBE_ROWS)
    assert len(rows) == heads.PROBE_ROWS and torch.all(rows[1:] > rows[:-1]) and rows[-1] > heads.PROBE_ROWS
