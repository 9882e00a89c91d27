"""Benchmark 4, search efficiency on the real data, one seed and split for all: (a) the seed's grid
over lr x batch_size, FIFO, no early stopping; (b) random search over spaces/hotdog.yaml, no early
stopping; (c) the project's search (search.tuner.build_tuner: Optuna TPE + ASHA + plateau rule).
Same trial count for all three; reports are ordered by arrival at the driver to find when each search
first came within 0.01 of the grid's best val_accuracy. (c) decodes its own data, counted.
"""

import math

from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

from bench.common import (
    SEED,
    VAL_FRACTION,
    Recorder,
    default_config,
    fit_recorded,
    row,
    run_trials,
    trainable,
    trial_settings,
    verdict,
)
from bench.datapath import counting_decodes, decode_row
from search.tasks import get_task
from search.tuner import SearchOptions, build_tuner, make_scheduler, prepare_trials
from spaces import load_space

WITHIN = 0.01  # "within 1 point" of the grid's best val_accuracy
TARGET = 1 / 3  # (c) should get there on at most a third of the grid's trial-epochs


def grid_search(ctx: dict, epochs: int) -> dict:
    grid = ctx["budget"]["grid"]
    space = default_config(lr=tune.grid_search(grid["lr"]), batch_size=tune.grid_search(grid["batch_size"]))
    return run_trials(trainable(trial_settings(ctx, epochs), ctx["data"]), space, ctx["storage"], "grid")


def random_search(ctx: dict, epochs: int, trials: int) -> dict:
    task = get_task("hotdog")
    space = load_space(task.space_file, task.hyperparameters)
    return run_trials(
        trainable(trial_settings(ctx, epochs), ctx["data"]),
        space,
        ctx["storage"],
        "random",
        num_samples=trials,
        search_alg=BasicVariantGenerator(random_state=SEED),
    )


def project_search(ctx: dict, epochs: int, trials: int) -> dict:
    """What run_search does, minus its progress printing and results files: prepare_trials (decode the
    data, under the counter, and load the weights), then the project's scheduler and build_tuner."""
    task = get_task("hotdog")
    options = SearchOptions(
        task="hotdog",
        output=ctx["storage"] / "project",
        data=str(ctx["root"]),
        trials=trials,
        max_epochs=epochs,
        seed=SEED,
        image_size=ctx["image_size"],
        val_fraction=VAL_FRACTION,
    )
    space = load_space(task.space_file, task.hyperparameters)
    with counting_decodes() as counter:
        # trials get the decoded tensors through the object store (tune.with_parameters): nothing to decode
        project_trainable, _ = prepare_trials(task, options)
        recorder = Recorder()
        tuner = build_tuner(task, options, space, project_trainable, make_scheduler(options), [recorder])
        out = fit_recorded(tuner, recorder)
    out["decodes"] = counter["decodes"]
    return out


def summarize(out: dict, threshold: float) -> dict:
    reports = sorted(out["reports"], key=lambda r: r["t"])
    scores = [r["val_accuracy"] for r in reports if r["val_accuracy"] is not None and not math.isnan(r["val_accuracy"])]
    reached = next((i for i, r in enumerate(reports) if (r["val_accuracy"] or 0.0) >= threshold - 1e-9), None)
    return {
        "best": max(scores, default=math.nan),
        "epochs": len(reports),
        "wall": out["wall"],
        "trials": len({r["trial"] for r in reports}),
        "epochs_to": reached + 1 if reached is not None else None,
        "wall_to": reports[reached]["t"] if reached is not None else None,
    }


def run(ctx: dict) -> list[dict]:
    budget = ctx["budget"]
    epochs = budget["search_epochs"]
    trials = len(budget["grid"]["lr"]) * len(budget["grid"]["batch_size"])
    runs = {"grid": grid_search(ctx, epochs)}
    runs["random"] = random_search(ctx, epochs, trials)
    runs["optuna+asha"] = project_search(ctx, epochs, trials)
    threshold = max(r["val_accuracy"] or 0.0 for r in runs["grid"]["reports"]) - WITHIN
    stats = {name: summarize(out, threshold) for name, out in runs.items()}
    grid_epochs, grid_wall = stats["grid"]["epochs"], stats["grid"]["wall"]

    lines = [
        f"Search efficiency, {trials} trials each, at most {epochs} epochs, image size {ctx['image_size']}, "
        f"target val_accuracy >= {threshold:.4f} (grid best - {WITHIN}):",
        "",
        "| search | trials | best val_accuracy | trial-epochs | wall s | trial-epochs to target | wall s to target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        to = (f"{s['epochs_to']} | {s['wall_to']:.0f}") if s["epochs_to"] else "not reached | -"
        lines.append(f"| {name} | {s['trials']} | {s['best']:.4f} | {s['epochs']} | {s['wall']:.0f} | {to} |")
    ctx["notes"]["4"] = "\n".join(lines)

    rows = []
    for id, name in (("4a", "grid"), ("4b", "random"), ("4c", "optuna+asha")):
        s = stats[name]
        ratio = s["epochs_to"] / grid_epochs if s["epochs_to"] else math.nan
        measured = (
            f"{name}: {s['epochs_to']} ep, {s['wall_to']:.0f} s (best {s['best']:.3f})"
            if s["epochs_to"]
            else f"{name}: not reached (best {s['best']:.3f})"
        )
        is_project = name == "optuna+asha"
        rows.append(
            row(
                id,
                f"{name}: trial-epochs until a report is within {WITHIN} of the grid's best"
                " / grid's total trial-epochs",
                f"grid: {grid_epochs} ep, {grid_wall:.0f} s (best {stats['grid']['best']:.3f})",
                measured,
                ratio,
                f"<= {TARGET:.2f}" if is_project else "-",
                verdict(ratio <= TARGET) if is_project else "-",
            )
        )
    c = stats["optuna+asha"]
    rows.append(
        row(
            "4d",
            "optuna+asha: wall s until within reach / grid's total wall s",
            f"grid {grid_wall:.0f} s",
            f"optuna+asha {c['wall_to']:.0f} s" if c["wall_to"] else "not reached",
            c["wall_to"] / grid_wall if c["wall_to"] else math.nan,
        )
    )
    rows.append(
        row(
            "4e",
            "optuna+asha / grid: total trial-epochs",
            f"grid {grid_epochs} ep",
            f"optuna+asha {c['epochs']} ep",
            c["epochs"] / grid_epochs,
        )
    )
    rows.append(decode_row(runs["optuna+asha"]["decodes"], len(ctx["data"]["labels"])))
    return rows
