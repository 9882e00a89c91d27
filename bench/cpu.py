"""Benchmark 5, CPU use: the same N identical trials (default config) as two concurrent 1-CPU trials
with 1 torch thread each (the project's default, cpus_per_trial=1) vs one trial at a time with
2 CPUs and 2 torch threads; throughput is trial-epochs per wall second of the whole Tune run.
"""

from bench.common import default_config, gaps, median, row, run_trials, trainable, trial_settings


def trials_run(ctx: dict, cpus: int, concurrent: int, name: str) -> dict:
    """cpu_trials identical trials of cpu_epochs epochs; returns run_trials' wall and reports."""
    budget = ctx["budget"]
    settings = trial_settings(
        ctx, max_epochs=budget["cpu_epochs"], threads=cpus
    )  # torch threads = CPUs, as prepare_trials does
    return run_trials(
        trainable(settings, ctx["data"]),
        default_config(),
        ctx["storage"],
        name,
        resources={"cpu": cpus},
        num_samples=budget["cpu_trials"],
        max_concurrent=concurrent,
    )


def cpu_per_epoch(reports: list[dict]) -> list[float]:
    """CPU seconds of the trial's process between consecutive reports of the same trial."""
    by_trial: dict[str, list[float]] = {}
    for r in reports:
        if r["cpu"] is not None:
            by_trial.setdefault(r["trial"], []).append(r["cpu"])
    return [v for values in by_trial.values() for v in gaps(values)]


def run(ctx: dict) -> list[dict]:
    budget = ctx["budget"]
    trials = budget["cpu_trials"] * budget["cpu_reps"]
    runs = {"parallel": [], "serial": []}
    for rep in range(budget["cpu_reps"]):  # alternate, so a change in machine load hits both sides
        runs["parallel"].append(trials_run(ctx, cpus=1, concurrent=2, name=f"cpu-2x1cpu-{rep}"))
        runs["serial"].append(trials_run(ctx, cpus=2, concurrent=1, name=f"cpu-1x2cpu-{rep}"))
    # throughput over all reps: trial-epochs / wall seconds; epoch time: median over every epoch
    parallel, serial = (
        sum(len(o["reports"]) for o in runs[k]) / sum(o["wall"] for o in runs[k]) for k in ("parallel", "serial")
    )
    parallel_epoch, serial_epoch = (
        median(r["epoch_seconds"] for o in runs[k] for r in o["reports"]) for k in ("parallel", "serial")
    )
    parallel_cpu, serial_cpu = (
        median(v for o in runs[k] for v in cpu_per_epoch(o["reports"])) for k in ("parallel", "serial")
    )
    faster = "2 x 1-CPU (default)" if parallel > serial else "1 x 2-CPU"
    return [
        row(
            "5a",
            f"throughput, 2 concurrent 1-CPU trials / 1 trial with 2 CPUs ({trials} trials; faster: {faster})",
            f"1x2 CPU {serial:.3f} ep/s",
            f"2x1 CPU {parallel:.3f} ep/s",
            parallel / serial,
            "> 1 keeps the default",
        ),
        row(
            "5b",
            "median epoch_seconds of one trial, 1 thread (2 running) / 2 threads (1 running)",
            f"1x2 CPU {serial_epoch:.2f} s",
            f"2x1 CPU {parallel_epoch:.2f} s",
            parallel_epoch / serial_epoch,
        ),
        row(
            "5c",
            "CPU s one trial-epoch costs, 1 thread / 2 threads (between reports; counts the threads' spin-waiting)",
            f"2 threads {serial_cpu:.2f} s",
            f"1 thread {parallel_cpu:.2f} s",
            parallel_cpu / serial_cpu,
        ),
    ]
