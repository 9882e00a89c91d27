"""Using the winner on text: `search train` on tiny data (the real MiniLM, one short epoch) writes
model.yaml beside model/; `search predict` on the test file reproduces metrics.json's test accuracy
(classify, from the CSV) and entity F1 (ner, from the CoNLL it writes); per-label and per-type
scores land in metrics.json; `search export --format onnx` passes its parity check with the
tokenizer beside it; a title model is refused in one line. No Ray."""

import csv
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

from search.cli import main
from search.final import train_best_config
from tests.conftest import write_text_data
from trainables.basics import with_defaults
from trainables.text_data import entity_f1, read_examples
from trainables.text_task import HYPERPARAMETERS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{kind: the folder `search train` wrote}, trained once per kind on train/dev/test files."""
    made = {}

    def train(kind: str) -> Path:
        if kind not in made:
            root = tmp_path_factory.mktemp(kind)
            for split, n, seed in (("train", 60, 0), ("dev", 20, 1), ("test", 20, 2)):
                write_text_data(root / "data" / f"{split}.txt", kind, n, seed)
            config = with_defaults(HYPERPARAMETERS, {"batch_size": 8, "max_length": 32, "lr": 1e-4})
            doc = {"task": kind, "data": str(root / "data"), "epochs": 1, "seed": 0, "hyperparameters": config}
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # one is fastest on the shared 2 cores
            try:
                train_best_config(doc, root / "final")
            finally:
                torch.set_num_threads(threads)
            made[kind] = root
        return made[kind]

    return train


def test_classify_predicts_the_test_accuracy_and_exports(trained, tmp_path):
    root = trained("classify")
    final, metrics = root / "final", json.loads((root / "final" / "metrics.json").read_text())
    info = yaml.safe_load((final / "model.yaml").read_text())
    assert info["task"] == "classify" and info["model_file"] == "model" and info["labels"] == ["finance", "sports"]
    assert info["preprocessing"]["max_length"] == 32 and (final / "model" / "tokenizer_config.json").is_file()
    assert sum(map(sum, metrics["test_confusion_matrix"]["rows"])) == 20
    assert metrics["test_per_class"]["sports"]["support"] == 10

    out = tmp_path / "preds.csv"
    assert main(["predict", str(final), str(root / "data" / "test.txt"), "--output", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["text", "predicted", "given", "prob_finance", "prob_sports"] and len(rows) == 20
    assert sum(r["predicted"] == r["given"] for r in rows) / len(rows) == metrics["test_accuracy"]

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    target = tmp_path / "onnx" / "model.onnx"
    assert main(["export", str(final), "--output", str(target)]) == 0
    record = yaml.safe_load((target.parent / "export.yaml").read_text())
    assert record["export"]["parity_max_abs_diff"] <= 1e-4
    assert (target.parent / "tokenizer.json").is_file() or (target.parent / "vocab.txt").is_file()


def test_ner_writes_conll_whose_f1_is_the_test_f1(trained, tmp_path, capsys):
    root = trained("ner")
    final, metrics = root / "final", json.loads((root / "final" / "metrics.json").read_text())
    assert set(metrics["test_per_type"]) <= {"PER", "LOC"} and metrics["test_per_type"]
    test = root / "data" / "test.txt"
    capsys.readouterr()  # the training's lines
    assert main(["predict", str(final), str(test)]) == 0  # CoNLL on stdout, the tags replaced by predictions
    written = tmp_path / "predicted.txt"
    written.write_text(capsys.readouterr().out, encoding="utf-8")
    gold, predicted = read_examples(test, "conll")[0], read_examples(written, "conll")[0]
    assert [tokens for tokens, _ in gold] == [tokens for tokens, _ in predicted]
    f1 = entity_f1([tags for _, tags in gold], [tags for _, tags in predicted])["f1"]
    assert f1 == pytest.approx(metrics["test_f1"], abs=1e-12)

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert main(["export", str(final), "--format", "onnx"]) == 0
    assert yaml.safe_load((final / "onnx" / "export.yaml").read_text())["export"]["parity_max_abs_diff"] <= 1e-4


def test_bad_text_input_and_a_title_export_are_one_line(trained, tmp_path, capsys):
    final = trained("classify") / "final"
    assert main(["predict", str(final), str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "blank.txt").write_text("\n\n  \n")
    assert main(["predict", str(final), str(tmp_path / "blank.txt")]) == 2
    assert "the file is empty" in capsys.readouterr().err
    title = tmp_path / "title"
    (title / "model").mkdir(parents=True)
    (title / "model.yaml").write_text(yaml.safe_dump({"task": "title", "model_file": "model", "preprocessing": {}}))
    assert main(["export", str(title)]) == 2
    assert capsys.readouterr().err.startswith("search: error: title models cannot be exported: a title is generated")


def test_write_conll_is_the_training_format():
    from trainables.tasks.ner import write_conll

    stream = io.StringIO()
    write_conll([(["bob", "lives"], ["B-PER", "O"]), (["paris"], ["B-LOC"])], stream)
    assert stream.getvalue() == "bob B-PER\nlives O\n\nparis B-LOC\n\n"


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_qa_ranks_the_answer_file_and_exports_embeddings(trained, capsys):
    root = trained("qa")
    final, test = root / "final", root / "data" / "test.txt"
    capsys.readouterr()
    assert main(["predict", str(final), str(test)]) == 2
    assert "give --answers FILE" in capsys.readouterr().err
    assert main(["predict", str(final), str(test), "--answers", str(test), "--top", "2"]) == 0
    rows = csv_rows(capsys.readouterr().out)
    assert list(rows[0]) == ["question", "rank", "answer", "score"] and len(rows) == 2 * 20
    assert [r["rank"] for r in rows[:2]] == ["1", "2"] and float(rows[0]["score"]) >= float(rows[1]["score"])
    answers = {line.split("\t")[1] for line in test.read_text().splitlines() if line}
    assert {r["answer"] for r in rows} <= answers
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert main(["export", str(final)]) == 0
    assert yaml.safe_load((final / "onnx" / "export.yaml").read_text())["export"]["output"] == "embeddings"


def test_title_generates_a_title_per_line(trained, capsys):
    root = trained("title")
    capsys.readouterr()
    assert main(["predict", str(root / "final"), str(root / "data" / "test.txt")]) == 0
    rows = csv_rows(capsys.readouterr().out)
    assert list(rows[0]) == ["content", "title", "given"] and len(rows) == 20
    assert all(r["given"] and "\t" not in r["content"] for r in rows)


def test_lm_gives_each_line_a_perplexity(trained, tmp_path, capsys):
    root = trained("lm")
    (tmp_path / "lines.txt").write_text("the team and the coach in paris\nstocks of the bank\n")
    capsys.readouterr()
    assert main(["predict", str(root / "final"), str(tmp_path / "lines.txt")]) == 0
    rows = csv_rows(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["the team and the coach in paris", "stocks of the bank"]
    assert all(1.0 <= float(r["perplexity"]) < 1e6 and int(r["tokens"]) >= 4 for r in rows)
