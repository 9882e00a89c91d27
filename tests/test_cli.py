"""End-to-end tests of `python -m search`: a real (tiny) search with real Ray and torch, `search
train` on its best.yaml, reproducibility, and one-line errors with exit status 2 for bad input."""

import json
import shutil

import pandas as pd
import pytest
import torch
import torchvision
import yaml

from search.cli import main
from search.results import read_best_config
from search.tasks import TASKS
from tests.conftest import make_image_folder

TINY = ["--trials", "3", "--max-epochs", "2", "--image-size", "32", "--max-concurrent", "1"]


def search(data, output, *extra):
    return main(["hotdog", "--data", str(data), "--output", str(output), *TINY, *extra])


@pytest.fixture(scope="module")
def finished_search(tiny_images, tmp_path_factory):
    output = tmp_path_factory.mktemp("search")
    assert search(tiny_images, output) == 0
    return output


def test_search_writes_table_and_best_config(finished_search, capsys):
    table = pd.read_csv(finished_search / "results.csv")
    assert len(table) == 3
    for column in ("trial_id", "lr", "batch_size", "frozen_layers", "head_lr_mult", "weight_decay",
                   "epochs", "status", "val_accuracy", "best_epoch", "seconds"):
        assert column in table.columns
    assert set(table["status"]) <= {"completed", "stopped early", "plateau", "nan loss"}
    assert table["epochs"].between(1, 2).all()
    assert table["val_accuracy"].is_monotonic_decreasing  # sorted best first
    doc = read_best_config(finished_search / "best.yaml", TASKS)
    assert doc["task"] == "hotdog"
    assert doc["backbone"] in ("resnet18", "mobilenet_v2") and doc["pretrained"] is True
    assert doc["metric"]["value"] == pytest.approx(table["val_accuracy"].iloc[0])
    assert doc["hyperparameters"]["lr"] == pytest.approx(table["lr"].iloc[0])
    assert 1 <= doc["epochs"] <= 2


def test_train_from_best_config(finished_search, tmp_path, capsys):
    assert main(["train", str(finished_search / "best.yaml"), "--output", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert len(metrics["history"]) == metrics["epochs"]
    doc = yaml.safe_load((finished_search / "best.yaml").read_text())
    model = getattr(torchvision.models, doc["backbone"])(num_classes=2)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))  # a plain torchvision state_dict
    assert "test_accuracy" in capsys.readouterr().out


def test_same_seed_samples_same_configurations(finished_search, tiny_images, tmp_path):
    assert search(tiny_images, tmp_path) == 0
    names = ["lr", "batch_size", "frozen_layers", "head_lr_mult", "weight_decay"]
    first = pd.read_csv(finished_search / "results.csv")[names].sort_values("lr").reset_index(drop=True)
    second = pd.read_csv(tmp_path / "results.csv")[names].sort_values("lr").reset_index(drop=True)
    pd.testing.assert_frame_equal(first, second)


def test_refuses_to_overwrite_a_search(finished_search, tiny_images, capsys):
    before = (finished_search / "results.csv").read_bytes()
    assert search(tiny_images, finished_search) == 2
    assert "already holds a search" in capsys.readouterr().err
    assert (finished_search / "results.csv").read_bytes() == before


def _bad_data(tmp_path, kind):
    root = make_image_folder(tmp_path / "data", {"train": 3, "test": 2}, size=12)
    if kind == "no test split":
        shutil.rmtree(root / "test")
    elif kind == "empty class":
        for f in (root / "train" / "dog").iterdir():
            f.unlink()
    elif kind == "unreadable image":
        (root / "train" / "dog" / "0.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    elif kind == "one class":
        shutil.rmtree(root / "train" / "dog")
    return root


@pytest.mark.parametrize("kind, message", [
    ("no test split", "has no test/ folder"),
    ("empty class", "has no images"),
    ("unreadable image", "unreadable image"),
    ("one class", "only one class"),
])
def test_bad_data_is_refused_in_one_line(tmp_path, capsys, kind, message):
    assert search(_bad_data(tmp_path, kind), tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("search: error:") and message in err[0]


@pytest.mark.parametrize("args, message", [
    (["hotdog", "--data", "/nonexistent/data"], "does not exist"),
    (["hotdog", "--trials", "0"], "--trials must be at least 1"),
    (["hotdog", "--max-epochs", "-3"], "--max-epochs must be at least 1"),
    (["hotdog", "--gpus-per-trial", "-1"], "must not be negative"),
    (["hotdog", "--backbone", "vgg99"], "unknown backbone"),
    (["train", "/nonexistent/best.yaml"], "cannot read"),
])
def test_bad_arguments_are_refused_in_one_line(tiny_images, tmp_path, capsys, args, message):
    if args[0] == "hotdog":
        args = args + ["--output", str(tmp_path / "out")] + ([] if "--data" in args else ["--data", str(tiny_images)])
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_bad_space_file_names_file_and_key(tiny_images, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {loguniform: [0.1, 0.001]}\n")
    assert search(tiny_images, tmp_path / "out", "--space", str(space)) == 2
    err = capsys.readouterr().err
    assert str(space) in err and "lr" in err and "above upper bound" in err


def test_hand_edited_best_config_is_refused(finished_search, tmp_path, capsys):
    doc = yaml.safe_load((finished_search / "best.yaml").read_text())
    doc["hyperparameters"]["batch_size"] = -4
    edited = tmp_path / "best.yaml"
    edited.write_text(yaml.safe_dump(doc))
    assert main(["train", str(edited)]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_unknown_task_exits_2(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["sandwich"])
    assert exit.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
