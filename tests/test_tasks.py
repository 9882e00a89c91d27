"""search/tasks.py and trainables/task.py: every module in trainables/tasks/ is a task, found without
importing it (so `--help` loads neither torch, Ray nor pandas); each task is one object holding its
metric, table, space and the functions shared code calls."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from search import tasks
from spaces import load_space
from trainables.basics import UserError, check_value
from trainables.task import Task

REPO = Path(__file__).resolve().parents[1]
NAMES = ["classify", "hotdog", "image", "lm", "ner", "qa", "title"]
HEAVY = ("torch", "ray", "pandas", "torchvision", "transformers", "PIL")


def test_every_task_module_is_listed_with_its_summary():
    summaries = tasks.task_summaries()
    assert list(summaries) == NAMES
    for name, summary in summaries.items():
        task = tasks.get_task(name)
        assert isinstance(task, Task) and task.name == name and task.summary == summary


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["resume", "--help"]])
def test_help_imports_no_torch_ray_or_pandas(argv):
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['search', *{argv!r}]\n"
        "try:\n    runpy.run_module('search', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
        f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


def test_a_tasks_own_help_names_its_own_flags(capsys):
    from search.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser("hotdog").parse_args(["hotdog", "--help"])
    assert "--backbone" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser("classify").parse_args(["classify", "--help"])
    shown = capsys.readouterr().out
    assert "--extend-vocab" in shown and "--backbone" not in shown


@pytest.mark.parametrize("name", NAMES)
def test_each_task_is_complete_and_its_defaults_are_valid(name):
    task = tasks.get_task(name)
    assert task.mode in ("max", "min") and task.metric.startswith("val_")
    for key, spec in task.hyperparameters.items():
        assert check_value(key, spec.default, spec) == spec.default
    assert set(load_space(task.space_file, task.hyperparameters)) <= set(task.hyperparameters)
    for field in dataclasses.fields(Task):
        assert getattr(task, field.name) is not None, field.name


def test_hotdog_is_the_image_task_with_d2ls_data_as_default():
    image, hotdog = tasks.get_task("image"), tasks.get_task("hotdog")
    assert hotdog.fit is image.fit and hotdog.hyperparameters is image.hyperparameters
    assert hotdog.prepare.keywords["default_data"].__name__ == "hotdog_data"
    assert image.prepare.__name__ == "prepare_search"  # no default: --data or $SEARCH_DATA_DIR


def test_unknown_task_is_a_user_error():
    with pytest.raises(UserError, match="unknown task 'sandwich' \\(known: classify, hotdog"):
        tasks.get_task("sandwich")
    with pytest.raises(UserError, match="unknown task"):
        tasks.get_task(["a", "list"])  # a hand-edited best.yaml can hold anything


def test_a_registered_variant_is_found_and_listed(monkeypatch):
    variant = dataclasses.replace(tasks.get_task("hotdog"), name="variant", summary="a test's variant")
    monkeypatch.setitem(tasks.REGISTERED, "variant", variant)
    assert tasks.get_task("variant") is variant
    assert tasks.task_summaries()["variant"] == "a test's variant"
