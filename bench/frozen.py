"""Benchmark 3, frozen layers: training with frozen_layers=5 and =3 (augment=none) with the
frozen-prefix cache on (settings.model.cache_frozen, the default) and off, in this process with one
thread; the cache must not change the reported val_accuracy or val_loss.
"""

import time

from bench.common import default_config, median, row, trial_settings, verdict
from trainables.image_classifier import fit_image_classifier
from trainables.image_task import trial_data

TOLERANCE = 1e-4  # on val_accuracy and val_loss: the same batches, only the prefix is computed in other chunk sizes


def timed_fit(ctx: dict, config: dict, epochs: int, cache: bool) -> tuple[list[dict], float]:
    """(reports, wall seconds of the whole fit, model building and the prefix's one-off pass included)."""
    train, evaluation = trial_data(ctx["data"])
    reports = []
    started = time.perf_counter()
    fit_image_classifier(
        config,
        trial_settings(ctx, max_epochs=epochs, cache_frozen=cache),
        train,
        evaluation,
        lambda metrics, state: reports.append(metrics),
    )
    return reports, time.perf_counter() - started


def run(ctx: dict) -> list[dict]:
    epochs = ctx["budget"]["frozen_epochs"]
    rows = []
    for ids, frozen_layers, target in ((("3a", "3b", "3c"), 5, 5.0), (("3d", "3e", "3f"), 3, None)):
        config = default_config(frozen_layers=frozen_layers, augment="none")
        on, on_wall = timed_fit(ctx, config, epochs, cache=True)
        off, off_wall = timed_fit(ctx, config, epochs, cache=False)
        e_on, e_off = median(m["epoch_seconds"] for m in on), median(m["epoch_seconds"] for m in off)
        d_acc = max(abs(a["val_accuracy"] - b["val_accuracy"]) for a, b in zip(on, off))
        d_loss = max(abs(a["val_loss"] - b["val_loss"]) for a, b in zip(on, off))
        speedup = e_off / e_on
        rows.append(
            row(
                ids[0],
                f"frozen_layers={frozen_layers}: cache off / on, median epoch_seconds ({epochs} epochs each)",
                f"cache on {e_on:.3f} s",
                f"cache off {e_off:.3f} s",
                speedup,
                f">= {target:g}" if target else "-",
                verdict(speedup >= target) if target else "-",
            )
        )
        rows.append(
            row(
                ids[1],
                f"frozen_layers={frozen_layers}: cache off / on, whole fit incl. model build and the "
                f"prefix's one-off pass",
                f"cache on {on_wall:.2f} s",
                f"cache off {off_wall:.2f} s",
                off_wall / on_wall,
            )
        )
        rows.append(
            row(
                ids[2],
                f"frozen_layers={frozen_layers}: last val_loss on / off (max abs diff over epochs: "
                f"val_accuracy {d_acc:.1e}, val_loss {d_loss:.1e})",
                f"off {off[-1]['val_loss']:.5f}",
                f"on {on[-1]['val_loss']:.5f}",
                on[-1]["val_loss"] / off[-1]["val_loss"],
                f"abs diff <= {TOLERANCE:g}",
                verdict(d_acc <= TOLERANCE and d_loss <= TOLERANCE),
            )
        )
    return rows
