"""Tests for trainables/text_task.py, what the text tasks share on the driver: splitting the data, label checks,
epochs by data size, ROUGE-L, preparing a search (the [UNK] warning, --extend-vocab); and end-to-end
searches of all five tasks through `python -m search` (real Ray, the real MiniLM) followed by
`search train`, the lm -> ner pipeline through --model, and one-line errors for bad input."""

import importlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from search.cli import main
from search.options import SearchOptions
from search.results import read_best_config
from search.tasks import get_task
from tests.conftest import CHINESE_UNK
from trainables.basics import UserError
from trainables.tasks.title import rouge_l
from trainables.text_task import TOKENIZER_DIR, default_max_epochs, read_splits

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
METRICS = {"lm": "val_perplexity", "title": "val_loss", "qa": "val_mrr", "classify": "val_accuracy", "ner": "val_f1"}
TEST_METRICS = {
    "lm": "test_perplexity",
    "title": "test_rouge_l",
    "qa": "test_mrr",
    "classify": "test_accuracy",
    "ner": "test_f1",
}
SMALL_SPACE = """\
lr: {loguniform: [1.0e-4, 2.0e-4]}   # one searched value: Optuna needs something to sample
batch_size: 8
frozen_layers: 0
head_lr_mult: 10.0
weight_decay: 0.01
warmup_ratio: 0.0
max_length: 32
"""


def kind_of(name: str):
    """The TextKind of text task `name` (trainables/tasks/NAME.py)."""
    return importlib.import_module(f"trainables.tasks.{name}").KIND


def read(name: str, data, val_fraction: float = 0.2, seed: int = 0, skip_bad_lines: bool = False):
    return read_splits(kind_of(name), name, data, val_fraction, seed, skip_bad_lines)


def label_names(name: str, splits: dict, facts: dict) -> list:
    return kind_of(name).labels(splits, facts)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def numbered(n: int) -> str:
    """`n` distinct labelled lines, alternating two labels."""
    return "".join(f"{'sports' if i % 2 else 'finance'}\tsentence number {i}\n" for i in range(n))


# --- splits ----------------------------------------------------------------------------------------


def test_a_single_file_gives_carved_disjoint_seeded_splits(tmp_path):
    data = write(tmp_path / "all.tsv", numbered(100))
    splits, facts = read("classify", str(data), 0.2, seed=0, skip_bad_lines=False)
    assert facts["carved"] == ["test", "validation"] and facts["files"] == {"train": str(data.resolve())}
    assert len(splits["test"]) == 10 and len(splits["validation"]) == 18 and len(splits["train"]) == 72
    parts = [set(splits[name]) for name in ("train", "validation", "test")]
    assert sum(map(len, parts)) == 100 and len(set().union(*parts)) == 100  # disjoint, nothing lost
    for name in ("validation", "test"):  # stratified: both labels on every side
        assert {label for label, _ in splits[name]} == {"sports", "finance"}
    again, _ = read("classify", str(data), 0.2, seed=0, skip_bad_lines=False)
    other, _ = read("classify", str(data), 0.2, seed=1, skip_bad_lines=False)
    assert again == splits
    assert other["test"] != splits["test"]


def test_a_directory_with_dev_carves_only_the_test_split(tmp_path):
    write(tmp_path / "train.txt", numbered(40))
    write(tmp_path / "dev.txt", "sports\tdev one\nfinance\tdev two\n")
    splits, facts = read("classify", str(tmp_path), 0.2, seed=0, skip_bad_lines=False)
    assert facts["carved"] == ["test"]
    assert splits["validation"] == [("sports", "dev one"), ("finance", "dev two")]
    assert len(splits["test"]) == 4 and len(splits["train"]) == 36


def test_a_directory_with_dev_and_test_carves_nothing(tmp_path):
    write(tmp_path / "train.txt", "one line\ntwo lines\n")
    write(tmp_path / "valid.txt", "a validation line\n")
    write(tmp_path / "test.txt", "a test line\n")
    splits, facts = read("lm", str(tmp_path), 0.2, seed=0, skip_bad_lines=False)
    assert facts["carved"] == []
    assert splits == {"train": ["one line", "two lines"], "validation": ["a validation line"], "test": ["a test line"]}


def test_pairs_drop_repeats_and_keep_each_question_on_one_side(tmp_path):
    # 30 questions, each with two answers, and every pair written twice
    lines = "".join(f"question {q}?\tanswer {q}{a}\n" * 2 for q in range(30) for a in "ab")
    splits, facts = read("qa", str(write(tmp_path / "qa.tsv", lines)), 0.2, seed=0, skip_bad_lines=False)
    assert facts["duplicates"] == 60
    assert sum(len(v) for v in splits.values()) == 60  # each distinct pair once
    questions = {name: {q for q, _ in pairs} for name, pairs in splits.items()}
    assert not questions["train"] & questions["validation"] and not questions["train"] & questions["test"]
    assert not questions["validation"] & questions["test"]
    for pairs in splits.values():  # both answers of a question travel together
        assert len(pairs) == 2 * len({q for q, _ in pairs})


def test_too_little_data_to_carve_is_refused(tmp_path):
    with pytest.raises(UserError, match="cannot carve"):
        read("lm", str(write(tmp_path / "one.txt", "a single line\n")), 0.2, 0, False)


def test_no_data_is_refused():
    with pytest.raises(UserError, match="classify needs --data"):
        read("classify", None, 0.2, 0, False)


# --- labels ----------------------------------------------------------------------------------------


def test_label_names_are_sorted_with_o_first(tmp_path):
    splits = {
        "train": [(["a", "b", "c"], ["B-PER", "O", "B-LOC"])],
        "validation": [(["x"], ["O"])],
        "test": [(["y"], ["B-LOC"])],
    }
    assert label_names("ner", splits, {"files": {"train": "t"}}) == ["O", "B-LOC", "B-PER"]
    assert label_names("lm", {"train": ["x"]}, {}) == []


def test_a_test_label_train_never_has_is_refused_by_name(tmp_path):
    write(tmp_path / "train.txt", numbered(10))
    write(tmp_path / "dev.txt", "sports\tfine\n")
    test = write(tmp_path / "test.txt", "sports\tfine\nweather\tstorm today\n")
    splits, facts = read("classify", str(tmp_path), 0.2, 0, False)
    with pytest.raises(UserError) as e:
        label_names("classify", splits, facts)
    assert str(test) in str(e.value) and "'weather'" in str(e.value) and "test" in str(e.value)


def test_a_ner_tag_only_validation_has_is_refused(tmp_path):
    write(tmp_path / "train.txt", "alice B-PER\nruns O\n")
    dev = write(tmp_path / "dev.txt", "paris B-LOC\n")
    write(tmp_path / "test.txt", "bob B-PER\n")
    splits, facts = read("ner", str(tmp_path), 0.2, 0, False)
    with pytest.raises(UserError, match=f"{dev}: validation has tag 'B-LOC'"):
        label_names("ner", splits, facts)


def test_one_label_is_not_a_classification(tmp_path):
    write(tmp_path / "train.txt", "sports\ta\nsports\tb\n")
    write(tmp_path / "dev.txt", "sports\tc\n")
    write(tmp_path / "test.txt", "sports\td\n")
    with pytest.raises(UserError, match="only one label"):
        label_names("classify", *read("classify", str(tmp_path), 0.2, 0, False))


# --- epochs, ROUGE-L -------------------------------------------------------------------------------


@pytest.mark.parametrize("n, epochs", [(1, 15), (999, 15), (1_000, 8), (9_999, 8), (10_000, 5), (2_000_000, 5)])
def test_default_max_epochs_by_data_size(n, epochs):
    assert default_max_epochs(n) == epochs


@pytest.mark.parametrize(
    "prediction, reference, score",
    [
        ("stocks rise in tokyo", "stocks rise in tokyo", 1.0),
        ("Stocks Rise", "stocks rise", 1.0),  # case does not count
        ("apples and pears", "stocks rise in tokyo", 0.0),
        ("stocks fall in tokyo", "stocks rise in tokyo", 0.75),  # LCS 3 of 4 and 4
        ("tokyo stocks", "stocks rise in tokyo", 2 * 1 / 6),  # order matters: LCS 1
        ("", "stocks", 0.0),
        ("床前明月光", "床前明月光", 1.0),  # each CJK character is a word
        ("床前看月光", "床前明月光", 0.8),  # LCS 床前月光: 4 of 5 and 5
        ("疑是地上霜", "床前明月光", 0.0),
        ("上海 stocks 上涨", "上海 stocks", 2 * 3 / 8),  # mixed: 上 海 stocks 上 涨 (5) vs 上 海 stocks (3), LCS 3
    ],
)
def test_rouge_l(prediction, reference, score):
    assert rouge_l(prediction, reference) == pytest.approx(score)


# --- prepare_text_search ---------------------------------------------------------------------------


def prepare(kind: str, data: Path, output: Path, **options):
    task = get_task(kind)
    return task.prepare(task, SearchOptions(task=kind, output=output, data=str(data), max_epochs=None, **options))


def test_chinese_data_gets_the_unk_warning(tiny_text, tmp_path):
    prepared = prepare("lm", tiny_text["lm-zh"], tmp_path / "out")
    assert "warning:" in prepared.summary and "[UNK]" in prepared.summary and "--extend-vocab" in prepared.summary
    assert prepared.record["tokenizer"] is None and prepared.record["added_tokens"] == 0
    assert prepared.settings.model.vocab_size == 30522
    assert not (tmp_path / "out").exists()  # nothing written without --extend-vocab
    assert prepared.settings.epochs == 15 and prepared.settings.schedule_epochs == 15  # 60 lines: small data


def test_english_data_gets_no_warning(tiny_text, tmp_path):
    prepared = prepare("classify", tiny_text["classify"], tmp_path / "out")
    assert "warning" not in prepared.summary
    assert prepared.settings.model.labels == ["finance", "sports"] == prepared.record["labels"]
    assert set(prepared.data) == {"train", "validation"}  # test stays out of the trials
    assert len(prepared.data["train"]["ids"]) + len(prepared.data["validation"]["ids"]) == 72  # 80 less 10% test


def test_extend_vocab_saves_the_tokenizer_and_records_it(tiny_text, tmp_path):
    output = tmp_path / "out"
    prepared = prepare("lm", tiny_text["lm-zh"], output, extend_vocab=True)
    record, settings = prepared.record, prepared.settings
    assert record["added_tokens"] == len(CHINESE_UNK)
    assert (
        record["tokenizer"] == str(output / TOKENIZER_DIR)
        and (output / TOKENIZER_DIR / "tokenizer_config.json").is_file()
    )
    assert settings.model.vocab_size == 30522 + len(CHINESE_UNK)
    assert "added 5 tokens" in prepared.summary and "-> 0.0%" in prepared.summary
    unk = 100  # MiniLM's [UNK]: the tokenized data holds none any more
    assert not any(unk in ids for ids in prepared.data["train"]["lines"])


# --- end to end: python -m search TASK, then search train ------------------------------------------

KINDS = ["lm", "title", "qa", "classify", "ner"]


# The searches below share one Ray (tests/conftest.py's shared_ray): each would otherwise start and
# stop its own (~10 s here). Refusals of bad data need it too: the text tasks read their data in
# prepare, which runs once Ray is up.


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """`search train` trains in this process with torch's default threads (one per core); on the
    shared 2-core test machine that spins: an epoch took 56 s with 2 threads, 2 s with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def search_args(kind, data, output, space, *extra):
    return [
        kind,
        "--data",
        str(data),
        "--output",
        str(output),
        "--space",
        str(space),
        "--trials",
        "1",
        "--max-epochs",
        "1",
        "--no-report",
        *extra,
    ]


@pytest.fixture(scope="module")
def small_space(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("space") / "space.yaml", SMALL_SPACE)


@pytest.fixture(scope="module")
def searches(tiny_text, small_space, tmp_path_factory, shared_ray):
    """kind -> output folder of a finished one-trial search (run on first use)."""
    done = {}

    def run(kind):
        if kind not in done:
            output = tmp_path_factory.mktemp(f"search-{kind}")
            assert main(search_args(kind, tiny_text[kind], output, small_space)) == 0
            done[kind] = output
        return done[kind]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_search_writes_results_and_best_config(searches, kind):
    output = searches(kind)
    table = pd.read_csv(output / "results.csv", dtype={"trial_id": str})
    assert len(table) == 1 and table["status"].iloc[0] == "completed" and table["epochs"].iloc[0] == 1
    assert METRICS[kind] in table.columns and pd.notna(table[METRICS[kind]].iloc[0])
    doc = read_best_config(output / "best.yaml")
    assert doc["task"] == kind and doc["epochs"] == 1
    assert doc["metric"]["name"] == METRICS[kind] and doc["metric"]["value"] == pytest.approx(
        table[METRICS[kind]].iloc[0]
    )
    assert doc["hyperparameters"]["max_length"] == 32 and doc["hyperparameters"]["batch_size"] == 8
    assert 1e-4 <= doc["hyperparameters"]["lr"] <= 2e-4
    assert Path(doc["data"]).is_absolute() and doc["pretrained"] is True and doc["schedule_epochs"] == 1
    assert doc["checkpoint"].startswith("trials/")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_train_best_config_tests_and_saves_a_model(searches, kind, tmp_path, capsys):
    best = searches(kind) / "best.yaml"
    assert main(["train", str(best), "--output", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["task"] == kind and metrics["epochs"] == 1 and len(metrics["history"]) == 1
    assert isinstance(metrics[TEST_METRICS[kind]], float)
    if kind in ("classify", "ner", "title"):
        assert 0.0 <= metrics[TEST_METRICS[kind]] <= 1.0
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "tokenizer_config.json").is_file()
    assert TEST_METRICS[kind] in capsys.readouterr().out


@pytest.mark.slow
def test_classify_learns_the_tiny_data_and_checkpoint_can_be_tested(searches, tmp_path):
    output = searches("classify")
    doc = read_best_config(output / "best.yaml")
    assert doc["metric"]["value"] >= 0.9  # sports vs finance words: one epoch is enough
    assert main(["train", str(output / "best.yaml"), "--from-checkpoint", "--output", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["from_checkpoint"].endswith(doc["checkpoint"]) and metrics["test_accuracy"] >= 0.75


@pytest.mark.slow
def test_extended_lm_model_feeds_ner(tiny_text, small_space, tmp_path, capsys, shared_ray):
    """The pipeline: continued pretraining on Chinese with --extend-vocab, then NER on its model."""
    lm = tmp_path / "lm"
    assert main(search_args("lm", tiny_text["lm-zh"], lm, small_space, "--extend-vocab")) == 0
    out = capsys.readouterr().out
    assert "--extend-vocab: added 5 tokens" in out and "warning" not in out
    doc = read_best_config(lm / "best.yaml")
    assert doc["added_tokens"] == 5 and doc["tokenizer"] == str(lm / TOKENIZER_DIR)
    assert main(["train", str(lm / "best.yaml"), "--output", str(lm / "final")]) == 0
    model_dir = lm / "final" / "model"
    assert json.loads((model_dir / "config.json").read_text())["vocab_size"] == 30522 + 5

    ner = tmp_path / "ner"
    assert main(search_args("ner", tiny_text["ner-zh"], ner, small_space, "--model", str(model_dir))) == 0
    out = capsys.readouterr().out
    assert f"model: local {model_dir}" in out and "vocabulary 30527" in out
    assert "[UNK]" not in out  # the extended vocabulary reads the characters
    assert read_best_config(ner / "best.yaml")["model"] == str(model_dir)
    assert main(["train", str(ner / "best.yaml"), "--output", str(ner / "final")]) == 0
    assert 0.0 <= json.loads((ner / "final" / "metrics.json").read_text())["test_f1"] <= 1.0


@pytest.mark.slow
def test_skip_bad_lines_makes_a_file_with_a_bad_line_usable(tiny_text, small_space, tmp_path, capsys, shared_ray):
    data = write(tmp_path / "data.txt", tiny_text["classify"].read_text() + "a line without a tab\n")
    assert main(search_args("classify", data, tmp_path / "out", small_space, "--skip-bad-lines")) == 0
    assert f"skipped 1 bad line(s) in {data}" in capsys.readouterr().out
    assert read_best_config(tmp_path / "out" / "best.yaml")["skip_bad_lines"] is True


def test_a_space_with_every_value_fixed_runs_that_one_configuration(tiny_text, tmp_path, capsys, shared_ray):
    """A space that searches nothing (every key a fixed value, as spaces/__init__.py allows) is a
    baseline: the hand-set recipe runs once (--trials 1 implied), through the same code, without
    Optuna (which cannot sample an empty space), and best.yaml holds exactly those values."""
    space = write(tmp_path / "fixed.yaml", SMALL_SPACE.replace("{loguniform: [1.0e-4, 2.0e-4]}", "1.0e-4"))
    assert main(search_args("classify", tiny_text["classify"], tmp_path / "out", space, "--trials", "5")) == 0
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    assert len(table) == 1 and table.loc[0, "lr"] == pytest.approx(1.0e-4)
    best = read_best_config(tmp_path / "out" / "best.yaml")
    assert best["hyperparameters"]["lr"] == pytest.approx(1.0e-4) and best["hyperparameters"]["batch_size"] == 8
    assert yaml.safe_load((tmp_path / "out" / "search.yaml").read_text())["trials"] == 1


@pytest.mark.slow
def test_agnews_sample_is_learned_in_one_epoch(tmp_path, shared_ray):
    data = SHARED_TEXT / "cls_en_agnews_sample"
    if not data.is_dir():
        pytest.skip(f"{data} is absent (the shared text samples are not on this machine)")
    space = write(tmp_path / "space.yaml", SMALL_SPACE.replace("batch_size: 8", "batch_size: 16"))
    assert main(search_args("classify", data, tmp_path / "out", space)) == 0
    doc = read_best_config(tmp_path / "out" / "best.yaml")
    assert len(doc["labels"]) == 4
    assert doc["metric"]["value"] > 0.5  # chance is 0.25


# --- bad input: exit 2, one line on stderr, nothing written ----------------------------------------


def assert_refused(code, capsys, *fragments):
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("search: error:"), err
    for fragment in fragments:
        assert fragment in err[0], err


BAD_DATA = [  # (id, kind, file name -> text, flags, message fragments; {path} is the data file)
    (
        "labelled line without a tab",
        "classify",
        "sports\tone\nno tab here\nfinance\ttwo\n",
        [],
        ["{path}:2:", "found no tab"],
    ),
    ("pair line without a tab", "qa", "q\ta\nq2 a2\n", [], ["{path}:2:", "found no tab"]),
    ("empty file", "classify", "", [], ["{path}: no examples (the file is empty)"]),
    ("blank lines only", "lm", "\n  \n\n", [], ["{path}: no examples"]),
    ("bad BIO tag", "ner", "alice B-PER\nparis LOC\n", [], ["{path}:2:", "invalid tag 'LOC'"]),
    (
        "every line bad, skipped",
        "classify",
        "no tab\nnone here\n",
        ["--skip-bad-lines"],
        ["no examples (2 bad lines skipped)"],
    ),
    ("one label", "classify", "sports\ta\nsports\tb\nsports\tc\nsports\td\n", [], ["only one label"]),
]


@pytest.mark.parametrize("kind, text, flags, fragments", [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_refused_in_one_line(tmp_path, small_space, capsys, kind, text, flags, fragments, shared_ray):
    data = write(tmp_path / "data.txt", text)
    output = tmp_path / "out"
    assert_refused(
        main(search_args(kind, data, output, small_space, *flags)), capsys, *[f.format(path=data) for f in fragments]
    )
    assert not output.exists()


def test_missing_data_flag_is_refused(tmp_path, capsys, shared_ray):
    assert_refused(main(["classify", "--output", str(tmp_path / "out")]), capsys, "classify needs --data")


def test_missing_data_path_is_refused(tmp_path, capsys, shared_ray):
    assert_refused(
        main(["ner", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")]), capsys, "does not exist"
    )


def test_model_directory_without_config_is_refused(tiny_text, tmp_path, capsys, shared_ray):
    (tmp_path / "notamodel").mkdir()
    assert_refused(
        main(
            [
                "classify",
                "--data",
                str(tiny_text["classify"]),
                "--output",
                str(tmp_path / "out"),
                "--model",
                str(tmp_path / "notamodel"),
            ]
        ),
        capsys,
        "has no config.json",
    )


def test_unseen_test_label_is_refused_by_name(tmp_path, capsys, shared_ray):
    write(tmp_path / "data" / "train.txt", numbered(10))
    test = write(tmp_path / "data" / "test.txt", "weather\tstorm today\n")
    assert_refused(
        main(["classify", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "out")]),
        capsys,
        str(test),
        "'weather'",
    )


def test_compare_scratch_is_refused_for_text(tmp_path, capsys):
    best = write(
        tmp_path / "best.yaml",
        yaml.safe_dump({"task": "classify", "data": str(tmp_path), "epochs": 1, "hyperparameters": {"lr": 1e-4}}),
    )
    assert_refused(main(["train", str(best), "--compare-scratch"]), capsys, "--compare-scratch compares test accuracy")


@pytest.mark.slow
def test_training_past_the_searched_epochs_stretches_the_schedule(searches, tmp_path):
    """The search ran 1 epoch, so its schedule decays to 0 at the end of epoch 1; asked for 2, the
    learning rate must reach 0 at the end of epoch 2, not sit at 0 through it (the model would not
    change: the same test loss twice)."""
    best = searches("classify") / "best.yaml"
    assert main(["train", str(best), "--epochs", "2", "--output", str(tmp_path)]) == 0
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["test_loss"] != pytest.approx(history[0]["test_loss"], rel=1e-6)  # measured on test
