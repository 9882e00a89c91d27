"""The Python API (search/api.py): `import search` stays light; run()'s keywords are the CLI's
flags, with its defaults and checks; and the README's notebook example runs as written on tiny
generated images (a real search: run this file under the Ray lock)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import search
from search.api import search_argv
from trainables.basics import UserError

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "pandas", "torchvision", "transformers", "PIL")

# The README's notebook example, word for word; the test points its two paths at tiny data.
EXAMPLE = """\
import pandas as pd
import search
table, best = search.run("hotdog", data="../shared/data/hotdog", trials=4, max_epochs=2, output="runs/nb")
metrics = search.train("runs/nb/best.yaml")  # retrains the winner into runs/nb/final/ and tests it
predictions = pd.DataFrame(search.predict("runs/nb/final", "../shared/data/hotdog/test"))
"""


@pytest.mark.parametrize(
    "code",
    [
        "import search",
        "from search.cli import main; main(['predict', '--help'])",
        "from search.cli import main; main(['export', '--help'])",
    ],
)
def test_import_and_model_command_help_load_nothing_heavy(code):
    probe = (
        f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


def test_keywords_become_the_clis_flags():
    assert search_argv("hotdog", {"data": "d", "trials": 3, "max_epochs": None}) == [
        "hotdog",
        "--data",
        "d",
        "--trials",
        "3",
    ]
    assert search_argv("hotdog", {"pretrained": False, "report": False, "overwrite": True}) == [
        "hotdog",
        "--no-pretrained",
        "--no-report",
        "--overwrite",
    ]
    assert search_argv("classify", {"extend_vocab": True, "pretrained": True}) == ["classify", "--extend-vocab"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"trials": 0}, "--trials must be at least 1"),
        ({"trials": "many"}, "expected a whole number, got 'many'"),
        ({"backbone_size": 3}, "unknown option 'backbone_size'"),
        ({"amp": "fp8"}, "invalid choice: 'fp8'"),
    ],
)
def test_run_checks_its_options_as_the_cli_does(options, message, tmp_path):
    with pytest.raises(UserError, match=message):
        search.run("hotdog", output=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_an_unknown_task_and_a_missing_model_folder_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="invalid choice: 'sandwich'"):
        search.run("sandwich")
    with pytest.raises(UserError, match="does not exist"):
        search.predict(tmp_path / "nothing", "x.jpg")


def test_the_readme_notebook_example_runs(tiny_images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = EXAMPLE.replace("../shared/data/hotdog", str(tiny_images))
    scope = {}
    exec(compile(code, "README example", "exec"), scope)
    table, best, metrics, predictions = (scope[k] for k in ("table", "best", "metrics", "predictions"))
    assert isinstance(table, pd.DataFrame) and len(table) == 4 and best["task"] == "hotdog"
    assert (tmp_path / "runs" / "nb" / "final" / "model.yaml").is_file()
    correct = (predictions["path"].map(lambda p: Path(p).parent.name) == predictions["predicted"]).mean()
    assert correct == metrics["test_accuracy"] and len(predictions) == 8
