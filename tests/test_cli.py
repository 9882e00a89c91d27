"""End-to-end tests of `python -m search`: a real (tiny) search with real Ray and torch, `search
train` on its best.yaml (seeded), and one-line errors with exit status 2 for a bad best.yaml or
output. The same seed's search sampling the same configurations: tests/test_data_path.py; the
table of bad flags, spaces and data: tests/test_faults.py."""

import json
import shutil

import pandas as pd
import pytest
import torch
import yaml

from search.cli import main
from search.options import SearchOptions
from search.results import read_best_config
from trainables import backbones
from trainables.basics import UserError

TINY = ["--trials", "3", "--max-epochs", "2", "--image-size", "32", "--max-concurrent", "1"]


def search(data, output, *extra):
    return main(["hotdog", "--data", str(data), "--output", str(output), *TINY, *extra])


@pytest.fixture(scope="module")
def finished_search(tiny_search):
    """tests/conftest.py's tiny search: 4 trials, 2 epochs at 32 px, one at a time."""
    return tiny_search


def test_search_writes_table_and_best_config(finished_search, capsys):
    table = pd.read_csv(finished_search / "results.csv", dtype={"trial_id": str})
    assert len(table) == 4
    for column in (
        "trial_id",
        "lr",
        "batch_size",
        "frozen_layers",
        "head_lr_mult",
        "weight_decay",
        "epochs",
        "status",
        "val_accuracy",
        "best_epoch",
        "seconds",
    ):
        assert column in table.columns
    assert set(table["status"]) <= {"completed", "stopped early", "plateau", "nan loss"}
    assert table["epochs"].between(1, 2).all()
    assert table["val_accuracy"].is_monotonic_decreasing  # sorted best first
    doc = read_best_config(finished_search / "best.yaml")
    assert doc["task"] == "hotdog"
    assert doc["backbone"] in ("resnet18", "mobilenet_v2") and doc["pretrained"] is True
    assert doc["metric"]["value"] == pytest.approx(table["val_accuracy"].iloc[0])
    assert doc["hyperparameters"]["lr"] == pytest.approx(table["lr"].iloc[0])
    assert 1 <= doc["epochs"] <= 2
    # the space it came from (here chosen from the data), as searched
    assert doc["space"] == yaml.safe_load((finished_search / "space.yaml").read_text(encoding="utf-8"))
    assert "lr" in doc["space"] and "frozen_layers" in doc["space"]


def searched_network(doc: dict) -> torch.nn.Module:
    """The network best.yaml's winner trains (the space chosen from the data searches the offline
    pair; a torchvision network's model.pt loads into torchvision: tests/test_final.py)."""
    name = doc["hyperparameters"].get("backbone", "auto")
    return backbones.build_model(doc["backbone"] if name == "auto" else name, 2, None)


def test_train_from_best_config(finished_search, tmp_path, capsys):
    assert main(["train", str(finished_search / "best.yaml"), "--output", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert len(metrics["history"]) == metrics["epochs"]
    doc = yaml.safe_load((finished_search / "best.yaml").read_text())
    searched_network(doc).load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))  # a plain state_dict
    assert "test_accuracy" in capsys.readouterr().out


def test_train_seed_changes_the_run_and_is_recorded(finished_search, tmp_path):
    """--seed retrains with another seed (same splits): the same seed twice gives the same model,
    another seed another one; metrics.json says which seed it was."""

    def train(seed, folder):
        args = ["train", str(finished_search / "best.yaml"), "--output", str(tmp_path / folder)]
        assert main(args + ([] if seed is None else ["--seed", str(seed)])) == 0
        return json.loads((tmp_path / folder / "metrics.json").read_text())

    searched = yaml.safe_load((finished_search / "best.yaml").read_text())["seed"]
    default, once, again = train(None, "default"), train(searched + 1, "once"), train(searched + 1, "again")
    assert default["seed"] == searched and once["seed"] == again["seed"] == searched + 1
    losses = {
        name: [h["test_loss"] for h in run["history"]]
        for name, run in (("default", default), ("once", once), ("again", again))
    }
    assert losses["once"] == losses["again"] and losses["once"] != losses["default"]
    assert main(["train", str(finished_search / "best.yaml"), "--seed", "-1"]) == 2


def test_search_ends_with_a_report_and_report_rewrites_it(finished_search, capsys):
    page = finished_search / "report.html"
    assert page.is_file() and (finished_search / "report" / "curves.png").is_file()
    page.unlink()
    assert main(["report", str(finished_search)]) == 0
    assert page.is_file() and "report.html" in capsys.readouterr().out


def test_compare_scratch_writes_the_comparison_into_the_search(finished_search, tiny_images, tmp_path):
    search_copy = tmp_path / "search"
    shutil.copytree(finished_search, search_copy)
    assert main(["train", str(search_copy / "best.yaml"), "--compare-scratch", "--epochs", "2"]) == 0
    table = pd.read_csv(search_copy / "compare.csv")
    assert table["epoch"].tolist() == [1, 2]
    assert {"pretrained_test_accuracy", "scratch_test_accuracy"} <= set(table.columns)
    for name in ("pretrained", "scratch"):
        metrics = json.loads((search_copy / f"final-{name}" / "metrics.json").read_text())
        assert metrics["pretrained"] is (name == "pretrained")
    assert "compare.png" in (search_copy / "report.html").read_text() or (search_copy / "compare.png").is_file()


def test_train_from_checkpoint_tests_the_best_trial_without_retraining(finished_search, tmp_path, capsys):
    doc = yaml.safe_load((finished_search / "best.yaml").read_text())
    assert doc["checkpoint"].startswith("trials/")
    assert main(["train", str(finished_search / "best.yaml"), "--from-checkpoint", "--output", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["from_checkpoint"].endswith(doc["checkpoint"]) and "history" not in metrics
    trial_dir = (finished_search / doc["checkpoint"]).parent
    history = pd.read_json(trial_dir / "result.json", lines=True).set_index("epoch")
    assert history.loc[metrics["epochs"], "val_accuracy"] == doc["metric"]["value"]  # the best epoch's checkpoint
    searched_network(doc).load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert "tested the checkpoint" in capsys.readouterr().out


# --- bad input: exit 2 with one stderr line. Bad flags, spaces and data are tests/test_faults.py's
# table; here, the refusals that need this module's real finished search.


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def assert_refused(code, capsys, message):
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("search: error:") and message in err[0], err


def test_search_in_a_folder_with_another_search_is_refused(finished_search, tiny_images, capsys):
    before = {p: p.read_bytes() for p in finished_search.glob("*.*")}
    assert_refused(search(tiny_images, finished_search), capsys, "already holds a search")
    assert {p: p.read_bytes() for p in finished_search.glob("*.*")} == before


BEST_CASES = [  # (id, change to a valid best.yaml document or raw text, message)
    ("another task", lambda d: d.update(task="sandwich"), "unknown task 'sandwich'"),
    ("negative batch size", lambda d: d["hyperparameters"].update(batch_size=-4), "batch_size"),
    ("unknown hyperparameter", lambda d: d["hyperparameters"].update(dropout=0.5), "unknown hyperparameter 'dropout'"),
    ("zero epochs", lambda d: d.update(epochs=0), "epochs must be a whole number"),
    ("no hyperparameters", lambda d: d.pop("hyperparameters"), "missing key 'hyperparameters'"),
    ("not yaml", "task: hotdog\nepochs: [3\n", "not valid YAML"),
    ("a list", "- 1\n- 2\n", "expected a mapping"),
]


@pytest.mark.parametrize("change, message", [c[1:] for c in BEST_CASES], ids=[c[0] for c in BEST_CASES])
def test_bad_best_config_is_refused(finished_search, tmp_path, capsys, change, message):
    edited = tmp_path / "best.yaml"
    if isinstance(change, str):
        edited.write_text(change)
    else:
        doc = yaml.safe_load((finished_search / "best.yaml").read_text())
        change(doc)
        edited.write_text(yaml.safe_dump(doc))
    before = edited.read_bytes()
    assert_refused(main(["train", str(edited)]), capsys, message)
    assert edited.read_bytes() == before and not (tmp_path / "final").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "/nonexistent/best.yaml"], "cannot read"),
        (["resume", "/nonexistent/run"], "holds no search to resume"),
    ],
)
def test_missing_paths_are_refused(capsys, args, message):
    assert_refused(main(args), capsys, message)


def test_resume_with_damaged_options_is_refused(finished_search, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(finished_search, copy)
    (copy / "search.yaml").write_text("task: hotdog\nnot_an_option: 1\n")
    assert_refused(main(["resume", str(copy)]), capsys, "is damaged")


def test_from_checkpoint_without_checkpoint_is_refused(finished_search, tmp_path, capsys):
    doc = yaml.safe_load((finished_search / "best.yaml").read_text())
    doc["checkpoint"] = None
    edited = write(tmp_path / "best.yaml", yaml.safe_dump(doc))
    assert_refused(main(["train", str(edited), "--from-checkpoint"]), capsys, "names no checkpoint")


def test_unknown_task_exits_2(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["sandwich"])
    assert exit.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_amp_takes_only_known_modes_and_is_allowed_with_a_gpu(tiny_images, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        search(tiny_images, tmp_path / "out", "--amp", "fp8")
    assert refused.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err
    SearchOptions(task="hotdog", output=tmp_path, amp="bf16", gpus_per_trial=0.25).validate()  # a GPU: accepted
    with pytest.raises(UserError, match="--amp must be one of off, bf16, fp16"):
        SearchOptions(task="hotdog", output=tmp_path, amp="int8", gpus_per_trial=1).validate()
