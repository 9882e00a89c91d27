"""The Python API, for notebooks: `search.run`, `search.train`, `search.predict` and `search.export`
do what `python -m search TASK|train|predict|export` do, with the same defaults and checks (run's
keywords are the search flags, parsed by the CLI's own parser), and return what they made. Nothing
heavy is imported until a function is called, so `import search` stays light. (The drivers are
search/prediction.py and search/exporter.py: modules named predict/export would shadow these functions.)
"""

import contextlib
import io
from pathlib import Path

from trainables.basics import UserError


def search_argv(task: str, options: dict) -> list[str]:
    """`python -m search TASK ...`'s arguments for run()'s keywords: --name value, a True switch
    given (--extend-vocab), a False one as its --no- form (--no-pretrained, --no-report)."""
    defaults = vars(parse([task]))
    argv = [task]
    for key, value in options.items():
        if key not in defaults or key == "command":
            raise UserError(f"run() got an unknown option {key!r} for task {task}")
        flag = "--" + key.replace("_", "-")
        if isinstance(defaults[key], bool):
            if value != defaults[key]:
                argv.append(flag if value else "--no-" + key.replace("_", "-"))
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def parse(argv: list[str]):
    """The CLI's parse of `argv`; a bad value is a UserError carrying argparse's one line."""
    from search.cli import build_parser

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return build_parser(argv[0]).parse_args(argv)
    except SystemExit:
        last = captured.getvalue().strip().splitlines()[-1]  # "python -m search TASK: error: what is wrong"
        raise UserError(last.split("error: ", 1)[-1]) from None


def run_parsed(args) -> tuple:
    """A search from parsed CLI arguments (the CLI calls this too): (results table, best.yaml document)."""
    from search.options import SearchOptions
    from search.tuner import run_search

    options = {k: v for k, v in vars(args).items() if k not in ("command", "report")}
    table, best = run_search(SearchOptions(task=args.command, **options))
    if args.report:
        from search.report import write_report

        print(f"report: {write_report(args.output.expanduser().resolve())}")
    return table, best


def run(task: str, **options) -> tuple:
    """Search `task` (`python -m search TASK`'s flags as keywords: data=..., trials=8, max_epochs=3,
    output="runs/x", pretrained=False...). Returns (the results table as a DataFrame, best.yaml's document)."""
    return run_parsed(parse(search_argv(task, options)))


def train(
    best_yaml,
    output=None,
    data: str | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    pretrained: bool | None = None,
    from_checkpoint: bool = False,
    mlflow: str | None = None,
) -> dict:
    """`search train best.yaml`: retrain the configuration and test it; returns metrics.json's contents.
    The model folder (model.yaml, the weights) goes to `output`, by default final/ beside the YAML.
    `mlflow`: a tracking URI for the run (default: the search's --mlflow, from search.yaml beside the YAML)."""
    from search import tracking
    from search.final import train_best_config
    from search.layout import Layout
    from search.results import read_best_config
    from trainables.basics import is_uri

    best_yaml = Path(best_yaml)
    doc = read_best_config(best_yaml)
    if seed is not None and seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    checkpoint = None
    if from_checkpoint:
        if not doc.get("checkpoint"):
            raise UserError(f"{best_yaml} names no checkpoint (its search kept none)")
        # relative to best.yaml's folder, or absolute, or a URI when --storage-path was elsewhere
        checkpoint = doc["checkpoint"] if is_uri(doc["checkpoint"]) else best_yaml.parent / doc["checkpoint"]
    default = "final-checkpoint" if checkpoint else "final" if pretrained is not False else "final-scratch"
    output = Path(output) if output else Layout(best_yaml.parent).final(default)
    with tracking.final_run(mlflow or tracking.saved_uri(best_yaml.parent), best_yaml.parent, doc, output) as run:
        metrics = train_best_config(
            doc,
            output,
            data=data,
            pretrained=pretrained,
            epochs=epochs,
            checkpoint=checkpoint,
            seed=seed,
            on_epoch=run.epoch if run else None,
        )
        if run:
            run.finish(metrics, output)
    return metrics


def predict(
    model_dir,
    inputs,
    output=None,
    answers: str | None = None,
    top: int | None = None,
    batch_size: int | None = None,
) -> list:
    """`search predict`: the model's predictions for `inputs` (paths, folders, globs; one or a list),
    as rows (dicts: the CSV's rows; ner: (tokens, tags) per sentence); also written to `output` if given."""
    from search import prediction as driver

    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    rows = driver.predict(model_dir, inputs, answers=answers, top=top, batch_size=batch_size)
    if output is not None:
        driver.write_predictions(model_dir, rows, Path(output))
    return rows


def export(model_dir, format: str = "onnx", output=None) -> dict:
    """`search export`: {"path", "format", "max_abs_diff"} once the export passed its parity check."""
    from search.exporter import export as export_model

    return export_model(model_dir, format, output)
