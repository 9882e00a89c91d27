"""Using the winner on images: `search train` writes a self-describing model folder (model.yaml),
`search predict` on test/ reproduces metrics.json's test accuracy from its CSV, per-class scores
land in metrics.json, and `search export` writes ONNX (checked with onnxruntime) and TorchScript
whose logits match PyTorch's. Tiny generated images, no Ray."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from search.cli import main
from search.final import train_best_config
from search.model_dir import read_model_dir
from tests.test_final import doc_for
from trainables.image_predict import load


@pytest.fixture(scope="module")
def trained(tiny_images, tmp_path_factory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one is fastest on the shared 2 cores
    folder = tmp_path_factory.mktemp("final")
    train_best_config(doc_for(tiny_images), folder)
    torch.set_num_threads(threads)
    return folder


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_model_folder_describes_itself(trained):
    info = yaml.safe_load((trained / "model.yaml").read_text())
    assert info["task"] == "hotdog" and info["model_file"] == "model.pt" and info["classes"] == ["cat", "dog"]
    assert info["backbone"] == "mobilenet_v2" and info["hyperparameters"]["batch_size"] == 8
    prep = info["preprocessing"]
    assert prep["image_size"] == 32 and prep["decode_size"] == 37 and prep["mean"] == [0.485, 0.456, 0.406]
    assert info["test"]["test_accuracy"] == json.loads((trained / "metrics.json").read_text())["test_accuracy"]
    assert info["versions"]["torch"]


def test_metrics_hold_per_class_scores_and_the_confusion_matrix(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    matrix = metrics["test_confusion_matrix"]
    assert matrix["classes"] == ["cat", "dog"] and sum(map(sum, matrix["rows"])) == 8
    correct = sum(matrix["rows"][i][i] for i in range(2))
    assert correct / 8 == metrics["test_accuracy"]
    assert set(metrics["test_per_class"]["cat"]) == {"precision", "recall", "f1", "support"}
    assert metrics["test_per_class"]["dog"]["support"] == 4


def test_predicting_test_reproduces_the_test_accuracy(trained, tiny_images, tmp_path):
    out = tmp_path / "preds.csv"
    assert main(["predict", str(trained), str(tiny_images / "test"), "--output", str(out)]) == 0
    rows = csv_rows(out)
    assert list(rows[0]) == ["path", "predicted", "prob_cat", "prob_dog"] and len(rows) == 8
    accuracy = sum(Path(r["path"]).parent.name == r["predicted"] for r in rows) / len(rows)
    assert accuracy == json.loads((trained / "metrics.json").read_text())["test_accuracy"]
    assert all(abs(float(r["prob_cat"]) + float(r["prob_dog"]) - 1) < 1e-6 for r in rows)


def test_files_and_globs_are_predicted_and_bad_input_is_one_line(trained, tiny_images, tmp_path, capsys):
    one, glob = str(tiny_images / "test" / "cat" / "0.jpg"), f"{tiny_images}/test/dog/*"
    assert main(["predict", str(trained), one, glob]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("path,predicted") and len(shown) == 1 + 1 + 4
    assert main(["predict", str(trained / "model.pt"), one]) == 0  # the weights' path names their folder
    alone = capsys.readouterr().out.splitlines()[1].split(",")  # a batch of one: same class, floats within 1e-6
    assert alone[:2] == shown[1].split(",")[:2] and float(alone[2]) == pytest.approx(float(shown[1].split(",")[2]))
    assert main(["predict", str(trained), str(tmp_path / "nothing-*.jpg")]) == 2
    assert "no file matches" in capsys.readouterr().err
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["predict", str(trained), str(tmp_path / "broken.jpg")]) == 2
    assert capsys.readouterr().err.startswith("search: error: unreadable image")
    assert main(["predict", str(tmp_path), "x.jpg"]) == 2
    assert "has no model.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_passes_its_parity_check(trained, tmp_path, fmt, capsys):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    target = tmp_path / fmt / "model.out"
    assert main(["export", str(trained), "--format", fmt, "--output", str(target)]) == 0
    record = yaml.safe_load((target.parent / "export.yaml").read_text())
    assert record["export"]["parity_max_abs_diff"] <= 1e-4 and record["classes"] == ["cat", "dog"]
    assert "max abs diff" in capsys.readouterr().out
    x = torch.randn(5, 3, 32, 32)  # a batch size neither the trace nor the check used
    folder, info = read_model_dir(trained)
    with torch.no_grad():
        reference = load(folder, info, "cpu")(x).numpy()
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(str(target)).run(None, {"image": x.numpy()})[0]
    else:
        got = torch.jit.load(str(target))(x).detach().numpy()
    assert abs(got - reference).max() <= 1e-4
