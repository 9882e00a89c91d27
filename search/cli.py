"""Command line: `python -m search TASK [options]` runs a search, `python -m search resume DIR`
continues an interrupted one, `python -m search train best.yaml` trains the chosen configuration
and tests it, `predict` and `export` use the model it wrote (search/model_commands.py). `main(argv)`
returns the exit status: 0 on success, 2 for a user mistake (one line on stderr, no traceback), 130
when interrupted (the search can be resumed).
"""

import argparse
import sys
from pathlib import Path

from search.layout import Layout
from search.model_commands import MODEL_COMMANDS, add_model_commands, run_model_command
from search.options import AMP_MODES
from search.tasks import get_task, task_summaries
from trainables.basics import SearchInterrupted, UserError, number, whole_number
from trainables.task import Task


def add_search_flags(p: argparse.ArgumentParser, task: Task) -> None:
    p.add_argument("--data", metavar="PATH", help=task.data_help)
    p.add_argument(
        "--output",
        metavar="DIR",
        type=Path,
        default=Path("runs") / task.name,
        help="where trials, results.csv and best.yaml go (default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a search already in --output")
    default_space = (
        "chosen from the data, written to OUTPUT/space.yaml" if task.choose_space else f"spaces/{task.space_file.name}"
    )
    p.add_argument("--space", metavar="FILE", type=Path, help=f"search space YAML (default: {default_space})")
    p.add_argument(
        "--trials",
        type=whole_number,
        default=task.default_trials,
        help="number of configurations to try (default: %(default)s)",
    )
    p.add_argument(
        "--max-epochs", type=whole_number, help=f"epochs for a trial ASHA never stops (default: {task.max_epochs_help})"
    )
    p.add_argument(
        "--grace-period",
        type=whole_number,
        default=1,
        help="epochs before ASHA may stop a trial (default: %(default)s)",
    )
    p.add_argument("--time-budget", type=number, metavar="SECONDS", help="stop the whole search after this long")
    p.add_argument("--max-concurrent", type=whole_number, help="trials at once (default: as many as the CPUs/GPUs fit)")
    p.add_argument(
        "--cpus-per-trial", type=number, default=1.0, help="CPUs (and torch threads) per trial (default: %(default)s)"
    )
    p.add_argument(
        "--gpus-per-trial", type=number, default=0.0, help="GPUs per trial, fractions allowed (default: %(default)s)"
    )
    p.add_argument(
        "--max-failures",
        type=whole_number,
        default=2,
        help="retries of a trial that raised, each from its last checkpoint (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=whole_number, default=0, help="seeds the sampler, the split and training (default: %(default)s)"
    )
    for flag in task.flags:
        p.add_argument(*flag.names, **flag.options)
    p.add_argument(
        "--no-pretrained", dest="pretrained", action="store_false", help="random initialisation (the baseline)"
    )
    p.add_argument(
        "--val-fraction",
        type=number,
        default=0.2,
        help="share of the training data held out to score trials, when there is no dev/valid file "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--patience",
        type=whole_number,
        default=3,
        help="stop a trial after this many epochs without val_loss improving by --min-delta; 0: off "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--min-delta",
        type=number,
        default=1e-3,
        help="smallest val_loss improvement that counts (default: %(default)s)",
    )
    p.add_argument(
        "--memory-per-trial", type=number, metavar="GB", help="memory Ray reserves per trial (default: none reserved)"
    )
    p.add_argument(
        "--trial-timeout",
        type=number,
        metavar="SECONDS",
        help="stop a trial (status `timed out`) after this long without an epoch (default: the larger of "
        "600 and 10 times the slowest epoch so far)",
    )
    p.add_argument(
        "--pending-timeout",
        type=number,
        metavar="SECONDS",
        default=600.0,
        help="stop the search (resumable) if no trial could start within this long, e.g. on a busy cluster "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--reselect",
        type=whole_number,
        metavar="K",
        default=3,
        help="before best.yaml is final, re-run the top K trials with other seeds and choose by the mean "
        "(0: off, else at least 2; a fixed space never re-runs) (default: %(default)s)",
    )
    p.add_argument(
        "--reselect-seeds",
        type=whole_number,
        metavar="N",
        default=2,
        help="the other seeds each re-run candidate trains with (default: %(default)s)",
    )
    p.add_argument("--address", help="Ray cluster to join, e.g. auto (default: a private local Ray)")
    p.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="off",
        help="mixed precision in the trials: CUDA autocast in bf16 or fp16 (fp16 with a gradient "
        "scaler); needs --gpus-per-trial > 0 (default: %(default)s)",
    )
    p.add_argument(
        "--storage-path",
        metavar="PATH_OR_URI",
        help="where Ray keeps the trials and their checkpoints: a directory every node sees or a cloud "
        "URI (s3://, gs://, abfss://...); results.csv and best.yaml stay in --output (default: --output)",
    )
    p.add_argument(
        "--warm-start",
        metavar="OLD_OUTPUT",
        type=Path,
        help="tell the sampler an earlier search's scored trials (its --output; same task, and values "
        "inside this space) so it models from the first trial",
    )
    p.add_argument(
        "--mlflow",
        metavar="URI",
        help="log every trial (parameters, per-epoch metrics, status) to this MLflow tracking URI, e.g. "
        "file:./mlruns or http://host:5000; `search train` logs there too (needs the track extra)",
    )
    p.add_argument("--no-report", dest="report", action="store_false", help="skip OUTPUT/report.html at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-trial progress: only the final table")
    p.add_argument("-v", "--verbose", action="store_true", help="show Ray's and Optuna's own logs")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; of the tasks, only `command`'s gets its flags (importing a task loads torch, and
    `python -m search --help` needs only their names and summaries)."""
    parser = argparse.ArgumentParser(
        prog="python -m search",
        description="Find the best way to fine-tune a pretrained "
        "model on your data: a Ray Tune search with Optuna TPE and ASHA early stopping.",
    )
    commands = parser.add_subparsers(dest="command", metavar="TASK|train|predict|export", required=True)
    for name, summary in task_summaries().items():
        task_parser = commands.add_parser(name, help=f"search: {summary}", description=summary)
        if name == command:
            add_search_flags(task_parser, get_task(name))
    resume = commands.add_parser("resume", help="continue an interrupted search in DIR (finished trials are kept)")
    resume.add_argument("output", type=Path, metavar="DIR", help="the --output of the interrupted search")
    resume.add_argument("-v", "--verbose", action="store_true", help="show Ray's and Optuna's own logs")
    report = commands.add_parser(
        "report", help="write DIR/report.html: table, curves, parameters, importance, time line"
    )
    report.add_argument("output", type=Path, metavar="DIR", help="the --output of a search (finished or not)")
    train = commands.add_parser(
        "train", help="train best.yaml's configuration on train+validation, report the test metric"
    )
    train.add_argument("config", type=Path, help="a best.yaml written by a search")
    train.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="where the model, model.yaml and metrics.json go (default: final/ beside the YAML)",
    )
    train.add_argument("--data", metavar="DIR", help="data directory (default: the one recorded in the YAML)")
    train.add_argument("--epochs", type=whole_number, help="override the epochs recorded in the YAML")
    train.add_argument(
        "--seed",
        type=whole_number,
        help="train with this seed instead of the search's (the splits stay the search's): retrain "
        "with a few to see how much the test metric moves from run to run",
    )
    train.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        default=None,
        help="same configuration from random initialisation (the from-scratch baseline)",
    )
    train.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="do not retrain: test the best trial's checkpoint (trained on the train split only)",
    )
    train.add_argument(
        "--compare-scratch",
        action="store_true",
        help="also train the same configuration from random initialisation; the comparison "
        "(table and figure) goes beside the YAML and into its report",
    )
    train.add_argument(
        "--mlflow",
        metavar="URI",
        help="log the run (parameters, per-epoch test metrics, model.yaml) to this MLflow tracking URI "
        "(default: the search's --mlflow, if it had one)",
    )
    add_model_commands(commands)  # predict, export
    return parser


def report(output: Path) -> None:
    from search.report import write_report

    print(f"report: {write_report(output.expanduser().resolve())}")


def compare_scratch(doc: dict, folder: Path, data: str | None, epochs: int | None, seed: int | None) -> None:
    """The seed's experiment: the same configuration from pretrained weights and from scratch,
    both tested on test/, compared in folder/compare.{png,csv} and in folder's report."""
    from search.final import train_best_config
    from search.report import write_scratch_comparison

    runs = {
        name: train_best_config(
            doc, folder / f"final-{name}", data=data, pretrained=(name == "pretrained"), epochs=epochs, seed=seed
        )
        for name in ("pretrained", "scratch")
    }
    figure = write_scratch_comparison(runs["pretrained"], runs["scratch"], folder)
    print(
        f"test_accuracy: pretrained {runs['pretrained']['test_accuracy']:.4f}, "
        f"from scratch {runs['scratch']['test_accuracy']:.4f}; wrote {figure}"
    )
    if Layout(folder).results.is_file():
        report(folder)


def train(args) -> None:
    from search.api import train as train_model
    from search.results import read_best_config

    if args.epochs is not None and args.epochs < 1:  # 0 would otherwise fall back to best.yaml's epochs
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    if args.compare_scratch:
        doc = read_best_config(args.config)
        if not get_task(doc["task"]).compares_scratch:
            raise UserError(
                "--compare-scratch compares test accuracy of image tasks; for text, run "
                "`search train --no-pretrained` for the from-scratch baseline"
            )
        if args.seed is not None and args.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {args.seed}")
        compare_scratch(doc, args.config.parent, data=args.data, epochs=args.epochs, seed=args.seed)
        return
    train_model(
        args.config,
        args.output,
        data=args.data,
        epochs=args.epochs,
        seed=args.seed,
        pretrained=args.pretrained,
        from_checkpoint=args.from_checkpoint,
        mlflow=args.mlflow,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)
        if args.command == "train":
            train(args)
        elif args.command == "report":
            report(args.output)
        elif args.command in MODEL_COMMANDS:
            run_model_command(args)
        elif args.command == "resume":
            from search.tuner import resume_search

            resume_search(args.output, verbose=args.verbose)
            report(args.output)
        else:
            from search.api import run_parsed

            run_parsed(args)  # the search, then its report, as search.run() does
    except UserError as e:
        print(f"search: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("search: aborted", file=sys.stderr)
        return 130
    except SearchInterrupted as e:
        print(f"search: {e}", file=sys.stderr)
        return 130
    return 0
