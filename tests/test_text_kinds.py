"""Tests for the text kinds (trainables/tasks/{lm,title,qa,classify,ner}.py) and trainables/text_batches.py:
batches (clip, padding, lm windows, BERT masking), NER label alignment, the metrics, and the shared
text fit (trainables.text_task.fit) on the real MiniLM: it learns separable data, is
deterministic for a seed, and a run resumed from an epoch's state continues exactly as an
uninterrupted one (model, optimizer and LR schedule all come back)."""

import dataclasses
import io
from pathlib import Path

import pytest
import torch

from tests.conftest import text_lines
from trainables import text_models, text_task
from trainables.basics import with_defaults
from trainables.settings import trial_settings
from trainables.tasks import classify, lm, ner, qa, title
from trainables.tasks.classify import classification_scores
from trainables.tasks.lm import MASK_SHARE, lm_windows, mask_tokens
from trainables.text_batches import clip, index_batches, padded
from trainables.text_data import read_examples
from trainables.text_task import HYPERPARAMETERS, TextModel
from trainables.text_task import fit as fit_text

KINDS = {"lm": lm.KIND, "title": title.KIND, "qa": qa.KIND, "classify": classify.KIND, "ner": ner.KIND}

SPECIAL = {"start": 101, "end": 102, "pad": 0, "mask": 103}  # MiniLM's [CLS], [SEP], [PAD], [MASK]


@pytest.fixture(scope="module")
def model_path() -> str:
    return text_models.resolve_model(None)[0]


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return text_models.load_tokenizer(model_path)


def examples(tmp_path: Path, kind: str, n: int, seed: int = 0) -> list:
    fmt = {"classify": "labelled", "ner": "conll", "qa": "pairs", "title": "pairs", "lm": "corpus"}[kind]
    path = tmp_path / f"{kind}-{seed}.txt"
    path.write_text("\n".join(text_lines(kind, n, seed)) + "\n", encoding="utf-8")
    return read_examples(path, fmt)[0]


def settings_for(kind: str, model_path: str, tokenizer, labels: list[str], schedule_epochs: int = 2):
    special = {
        "start": tokenizer.cls_token_id,
        "end": tokenizer.sep_token_id,
        "pad": tokenizer.pad_token_id,
        "mask": tokenizer.mask_token_id,
    }
    model = TextModel(model_path, len(tokenizer), labels, special, extended_vocab=False, pretrained=True)
    return trial_settings(
        model,
        epochs=schedule_epochs,
        schedule_epochs=schedule_epochs,
        seed=3,
        patience=0,
        min_delta=0.0,
        cpus=1,
        gpus=0,
        amp="off",
    )


def config(**changes) -> dict:
    return with_defaults(HYPERPARAMETERS, {"batch_size": 8, "max_length": 24, **changes})


def fit(kind, settings, train, validation, cfg, epochs, resume=None):
    """The text fit for `epochs` with a `report` that keeps every epoch's metrics and a copy of its state, the
    way report_with_checkpoint saves it (a state holds live tensors: later training would change them)."""
    reports, states = [], []

    def report(metrics, state):
        buffer = io.BytesIO()
        torch.save(state(), buffer)
        buffer.seek(0)
        states.append(torch.load(buffer, weights_only=True))
        reports.append({k: v for k, v in metrics.items() if k not in ("epoch_seconds", "rss_mb")})

    model = fit_text(KINDS[kind], cfg, dataclasses.replace(settings, epochs=epochs), train, validation, report, resume)
    return model, reports, states


# --- batches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ids, length, expected",
    [
        ([101, 1, 2, 3, 102], 5, [101, 1, 2, 3, 102]),
        ([101, 1, 2, 3, 102], 9, [101, 1, 2, 3, 102]),
        ([101, 1, 2, 3, 102], 4, [101, 1, 2, 102]),  # the final [SEP] stays
        ([101, 1, 2, 3, 102], 2, [101, 102]),
    ],
)
def test_clip_keeps_the_final_separator(ids, length, expected):
    assert clip(ids, length) == expected


def test_padded_pads_to_the_longest_of_the_batch():
    ids, mask = padded([[101, 5, 102], [101, 102], [101, 7, 8, 9, 102]], pad=0)
    assert ids.tolist() == [[101, 5, 102, 0, 0], [101, 102, 0, 0, 0], [101, 7, 8, 9, 102]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert ids.dtype == mask.dtype == torch.long


@pytest.mark.parametrize("length", [8, 10, 16])
def test_lm_windows_read_every_token_exactly_once(length):
    lines = [list(range(1000, 1023)), list(range(2000, 2003)), list(range(3000, 3000 + 2 * (length - 2)))]
    windows = lm_windows(lines, length, SPECIAL)
    assert all(w[0] == 101 and w[-1] == 102 and 3 <= len(w) <= length for w in windows)
    body = [token for w in windows for token in w[1:-1]]
    assert body == [token for line in lines for token in line]  # in order, none twice, none lost
    assert len(windows) == sum(-(-len(line) // (length - 2)) for line in lines)


def test_index_batches_cover_each_example_once_and_shuffle_by_seed():
    plain = index_batches(10, 4)
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = index_batches(10, 4, torch.Generator().manual_seed(1))
    assert sorted(i for b in shuffled for i in b) == list(range(10)) and [len(b) for b in shuffled] == [4, 4, 2]
    assert shuffled == index_batches(10, 4, torch.Generator().manual_seed(1))
    assert shuffled != index_batches(10, 4, torch.Generator().manual_seed(2))


def random_batch(rows=64, width=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, width + 1, (rows,), generator=g)
    seqs = [[101, *torch.randint(1000, 5000, (int(n) - 2,), generator=g).tolist(), 102] for n in lengths]
    return padded(seqs, 0)


def test_mask_tokens_picks_about_15_percent_of_real_tokens_only():
    ids, mask = random_batch(rows=256, width=64)  # ~1,300 chosen tokens: the shares below are within 3 sigma
    inputs, labels = mask_tokens(ids, mask, SPECIAL, 30522, torch.Generator().manual_seed(0))
    chosen = labels != -100
    real = (mask == 1) & (ids != 101) & (ids != 102)
    assert not (chosen & ~real).any()  # never [CLS], [SEP] or padding
    assert chosen.sum() / real.sum() == pytest.approx(MASK_SHARE, abs=0.01)
    assert torch.equal(labels[chosen], ids[chosen])  # the label is the original token
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    masked = (inputs[chosen] == 103).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()
    assert masked == pytest.approx(0.8, abs=0.035) and kept == pytest.approx(0.1, abs=0.025)


def test_mask_tokens_is_deterministic_with_a_generator():
    ids, mask = random_batch(rows=8)
    first = mask_tokens(ids, mask, SPECIAL, 30522, torch.Generator().manual_seed(5))
    again = mask_tokens(ids, mask, SPECIAL, 30522, torch.Generator().manual_seed(5))
    other = mask_tokens(ids, mask, SPECIAL, 30522, torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


# --- encoding --------------------------------------------------------------------------------------


def test_ner_labels_go_to_the_first_sub_token(tokenizer):
    sentence = (["alice", "likes", "tokenization", "in", "paris"], ["B-PER", "O", "B-MISC", "O", "B-LOC"])
    labels = ["O", "B-LOC", "B-MISC", "B-PER"]
    out = KINDS["ner"].encode(tokenizer, [sentence], labels)
    ids = out["ids"][0]
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "[CLS]",
        "alice",
        "likes",
        "token",
        "##ization",
        "in",
        "paris",
        "[SEP]",
    ]
    assert out["token_labels"][0] == [-100, 3, 0, 2, -100, 0, 1, -100]
    assert out["first"][0] == [1, 2, 3, 5, 6]
    assert out["tags"][0] == sentence[1]


def test_ner_batch_clips_labels_with_the_ids(tokenizer):
    sentence = (["alice", "likes", "tokenization", "in", "paris"], ["B-PER", "O", "O", "O", "B-LOC"])
    split = KINDS["ner"].encode(tokenizer, [sentence], ["O", "B-LOC", "B-PER"])
    batch = ner.make_batch(split, [0], 5, SPECIAL)
    assert batch["ids"].tolist()[0][-1] == 102 and batch["ids"].shape == batch["labels"].shape == (1, 5)
    assert batch["labels"].tolist() == [[-100, 2, 0, 0, -100]]  # [SEP] replaced ##ization: not scored


@pytest.mark.parametrize("kind, n", [("classify", 6), ("qa", 5), ("title", 4), ("lm", 3)])
def test_encode_keeps_one_entry_per_example(tmp_path, tokenizer, kind, n):
    data = examples(tmp_path, kind, n)
    out = KINDS[kind].encode(tokenizer, data, ["finance", "sports"])
    assert KINDS[kind].size(out) == n
    if kind == "classify":
        assert out["labels"] == [1 if label == "sports" else 0 for label, _ in data]
        assert all(ids[0] == 101 and ids[-1] == 102 for ids in out["ids"])
    if kind == "title":  # targets start after [CLS]: the decoder is started with it
        assert all(t[0] != 101 and t[-1] == 102 for t in out["target"])
    if kind == "lm":  # no specials yet: windows add them per trial
        assert all(101 not in ids and 102 not in ids for ids in out["lines"])


# --- metrics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold, predicted, classes, accuracy, macro_f1",
    [
        ([0, 1, 0, 1], [0, 1, 0, 1], 2, 1.0, 1.0),
        ([0, 0, 0, 0], [1, 1, 1, 1], 2, 0.0, 0.0),
        ([0, 0, 1, 1], [0, 1, 1, 1], 2, 0.75, (2 / 3 + 0.8) / 2),
        ([0, 0, 0, 1], [0, 0, 0, 0], 3, 0.75, (6 / 7 + 0.0) / 2),  # class 2 occurs nowhere: not averaged
    ],
)
def test_classification_scores(gold, predicted, classes, accuracy, macro_f1):
    scores = classification_scores(gold, predicted, classes)
    assert scores["val_accuracy"] == pytest.approx(accuracy)
    assert scores["val_macro_f1"] == pytest.approx(macro_f1)


def test_retrieval_is_perfect_when_questions_are_their_answers(model_path, tokenizer):
    texts = [
        f"{person} lives in {place}"
        for person, place in zip(["alice", "bob", "carol", "david"], ["paris", "tokyo", "rome", "berlin"])
    ]
    split = KINDS["qa"].encode(tokenizer, list(zip(texts, texts)), [])
    model = qa.build_model(model_path, len(tokenizer), 0, True, SPECIAL).eval()
    scores = qa.evaluate(model, split, 32, SPECIAL, 0, [], "cpu")
    assert scores["val_mrr"] == 1.0 and scores["val_recall_at_1"] == 1.0
    shuffled = KINDS["qa"].encode(tokenizer, list(zip(texts, texts[1:] + texts[:1])), [])  # every answer another's
    worse = qa.evaluate(model, shuffled, 32, SPECIAL, 0, [], "cpu")
    assert worse["val_recall_at_1"] == 0.0 and worse["val_mrr"] < 1.0 and worse["val_loss"] > scores["val_loss"]


def test_a_question_with_two_answers_counts_its_best_ranked(model_path, tokenizer):
    pairs = [
        ("alice lives in paris", "alice lives in paris"),
        ("alice lives in paris", "the stock market fell"),
        ("bob eats rice", "bob eats rice"),
    ]
    split = KINDS["qa"].encode(tokenizer, pairs, [])
    scores = qa.evaluate(
        qa.build_model(model_path, len(tokenizer), 0, True, SPECIAL).eval(), split, 32, SPECIAL, 0, [], "cpu"
    )
    assert scores["val_mrr"] == 1.0 and scores["val_recall_at_1"] == 1.0  # two distinct questions, both first


def test_ner_word_cut_by_max_length_counts_as_o(model_path, tokenizer):
    """A word whose first sub-token is cut by max_length (its place taken by the final [SEP]) must
    count as predicted O, like every later word, not take the prediction made at [SEP]."""
    labels = ["O", "B-LOC", "B-PER"]
    sentence = (["alice", "lives", "in", "paris", "now"], ["B-PER", "O", "O", "B-LOC", "O"])
    split = KINDS["ner"].encode(tokenizer, [sentence], labels)
    length = 5  # [CLS] alice lives in [SEP]: paris's position 4 now holds [SEP]
    assert split["first"][0][3] == length - 1
    model = ner.build_model(model_path, len(tokenizer), len(labels), True, SPECIAL).eval()
    batch = ner.make_batch(split, [0], length, SPECIAL)
    with torch.no_grad():  # a real head that says B-LOC at [SEP] and O everywhere else
        hidden = model.bert(input_ids=batch["ids"], attention_mask=batch["mask"]).last_hidden_state[0]
        wanted = torch.tensor([-1.0, -1.0, -1.0, -1.0, 1.0]).unsqueeze(1)  # B-LOC's score per position
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[1] = torch.linalg.lstsq(hidden, wanted).solution.squeeze(
            1
        )  # 5 points in 384 dims: exact
        predicted = model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits.argmax(-1)[0].tolist()
    assert predicted == [0, 0, 0, 0, 1]
    scores = ner.evaluate(model, split, length, SPECIAL, len(tokenizer), labels, "cpu")
    assert scores["val_recall"] == 0.0 and scores["val_precision"] == 0.0  # nothing the model saw was predicted


# --- the text fit on the real MiniLM ----------------------------------------------------------


@pytest.fixture(scope="module")
def classify_data(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("classify")
    labels = ["finance", "sports"]
    train, validation = examples(root, "classify", 40, seed=1), examples(root, "classify", 20, seed=2)
    return (
        KINDS["classify"].encode(tokenizer, train, labels),
        KINDS["classify"].encode(tokenizer, validation, labels),
        labels,
    )


def test_fit_learns_separable_classes(model_path, tokenizer, classify_data):
    train, validation, labels = classify_data
    settings = settings_for("classify", model_path, tokenizer, labels)
    model, reports, _ = fit("classify", settings, train, validation, config(lr=2e-4, warmup_ratio=0.0), epochs=2)
    assert [r["epoch"] for r in reports] == [1, 2]
    assert reports[-1]["val_accuracy"] >= 0.9 and reports[-1]["val_macro_f1"] >= 0.9
    assert reports[-1]["train_loss"] < 0.69  # below chance's log(2)
    assert type(model).__name__ == "BertForSequenceClassification"


def test_frozen_stages_keep_their_pretrained_weights(model_path, tokenizer, classify_data):
    train, validation, labels = classify_data
    settings = settings_for("classify", model_path, tokenizer, labels)
    model, _, _ = fit("classify", settings, train, validation, config(frozen_layers=2, lr=1e-3), epochs=1)
    reference = classify.build_model(model_path, len(tokenizer), len(labels), True, SPECIAL)
    for trained, original in zip(text_models.stages(model)[:2], text_models.stages(reference)[:2]):
        assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), original.state_dict().values()))
    assert not torch.equal(
        text_models.stages(model)[2].attention.self.query.weight,
        text_models.stages(reference)[2].attention.self.query.weight,
    )


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("lm")
    return KINDS["lm"].encode(tokenizer, examples(root, "lm", 24, seed=1), []), KINDS["lm"].encode(
        tokenizer, examples(root, "lm", 8, seed=2), []
    )


@pytest.mark.parametrize("kind", ["classify", "lm"])
def test_same_seed_same_metrics_and_resume_matches_an_uninterrupted_run(
    model_path, tokenizer, classify_data, lm_data, kind
):
    if kind == "classify":
        train, validation, labels = classify_data
    else:
        (train, validation), labels = lm_data, []
    settings = settings_for(kind, model_path, tokenizer, labels, schedule_epochs=2)
    cfg = config(lr=1e-4, warmup_ratio=0.3, max_length=16)  # warm-up spans epoch 1 and part of 2: the schedule matters
    _, whole, states = fit(kind, settings, train, validation, cfg, epochs=2)
    _, again, _ = fit(kind, settings, train, validation, cfg, epochs=2)
    assert again == whole
    assert states[0]["epoch"] == 1 and "scheduler" in states[0]
    _, resumed, _ = fit(kind, settings, train, validation, cfg, epochs=2, resume=states[0])
    assert resumed == whole[1:]
    restarted = {**states[0], "scheduler": {**states[0]["scheduler"], "last_epoch": 0, "_step_count": 1}}
    _, warmed_again, _ = fit(kind, settings, train, validation, cfg, epochs=2, resume=restarted)
    assert warmed_again[0]["train_loss"] != whole[1]["train_loss"]  # the check above would see a lost schedule


def test_resume_from_a_finished_run_trains_no_more(model_path, tokenizer, classify_data):
    train, validation, labels = classify_data
    settings = settings_for("classify", model_path, tokenizer, labels)
    _, _, states = fit("classify", settings, train, validation, config(max_length=16), epochs=1)
    _, reports, _ = fit("classify", settings, train, validation, config(max_length=16), epochs=1, resume=states[0])
    assert reports == []


# --- head_init probe: the new head starts solved as a linear probe on what it sees (LP-FT) ------------


def test_the_probe_head_is_fit_head_on_the_classifier_inputs(model_path, tokenizer, classify_data):
    """At a learning rate that moves nothing, the head after one epoch is the probe: fit_head on the
    pooled outputs the classifier reads (eval mode), found here without the hook."""
    from trainables.heads import fit_head

    train, validation, labels = classify_data
    settings = settings_for("classify", model_path, tokenizer, labels)
    cfg = config(lr=1e-7, head_lr_mult=1.0, weight_decay=0.02, head_init="probe", warmup_ratio=0.0)
    model, reports, _ = fit("classify", settings, train, validation, cfg, epochs=1)
    reference = classify.build_model(model_path, len(tokenizer), len(labels), True, SPECIAL).eval()
    batch = classify.make_batch(train, list(range(len(train["ids"]))), cfg["max_length"], SPECIAL)
    with torch.no_grad():
        pooled = reference.bert(input_ids=batch["ids"], attention_mask=batch["mask"]).pooler_output
    fit_head(reference.classifier, pooled, batch["labels"], 0.02)
    assert torch.allclose(model.classifier.weight, reference.classifier.weight, atol=1e-3)
    assert reports[0]["val_accuracy"] >= 0.9  # the probe alone separates the tiny classes


def test_a_probe_head_tags_before_any_training_where_xavier_s_does_not(tmp_path, model_path, tokenizer):
    """ner: the probe fits the labelled tokens' rows only (-100: padding, later pieces); with nothing
    trained after it, it already tags the tiny data, where the Xavier head tags nothing right."""
    data = examples(tmp_path, "ner", 40)
    labels = ["O", "B-LOC", "B-PER", "I-PER"]
    train, validation = (KINDS["ner"].encode(tokenizer, d, labels) for d in (data[:30], data[30:]))
    settings = settings_for("ner", model_path, tokenizer, labels, schedule_epochs=1)
    f1 = {}
    for start in ("xavier", "probe"):
        cfg = config(lr=1e-7, head_lr_mult=1.0, warmup_ratio=0.0, max_length=16, head_init=start)
        f1[start] = fit("ner", settings, train, validation, cfg, epochs=1)[1][0]["val_f1"]
    assert f1["probe"] >= 0.9 and f1["xavier"] < 0.5, f1
    rows, gold = text_task.probe_rows(
        ner.KIND,
        ner.build_model(model_path, len(tokenizer), 4, True, SPECIAL),
        train,
        16,
        SPECIAL,
        len(tokenizer),
        0,
        "cpu",
    )
    assert len(rows) == len(gold) == sum(t >= 0 for tags in train["token_labels"] for t in tags[:15])


# --- class_weights: each label weighs alike in the loss and the probe ---------------------------------


def labelled(tmp_path, sports: int, finance: int, tokenizer) -> dict:
    data = examples(tmp_path, "classify", 2 * max(sports, finance), seed=5)
    kept = [e for e in data if e[0] == "sports"][:sports] + [e for e in data if e[0] == "finance"][:finance]
    return KINDS["classify"].encode(tokenizer, kept, ["finance", "sports"])


def test_balanced_class_weights_weigh_the_probe_and_the_loss(tmp_path, model_path, tokenizer, classify_data):
    """24 sports lines to 4 finance: the probe head is fit_head with the balanced weights on the pooled
    outputs, and the weighted loss trains differently; on equal counts the weights are all 1 and the
    knob changes nothing."""
    from trainables.heads import balanced_weights, fit_head

    _, validation, labels = classify_data
    train = labelled(tmp_path, 24, 4, tokenizer)
    settings = settings_for("classify", model_path, tokenizer, labels)
    probe = dict(lr=1e-7, head_lr_mult=1.0, weight_decay=0.02, head_init="probe", warmup_ratio=0.0)
    model, _, _ = fit("classify", settings, train, validation, config(**probe, class_weights="balanced"), epochs=1)
    reference = classify.build_model(model_path, len(tokenizer), len(labels), True, SPECIAL).eval()
    batch = classify.make_batch(train, list(range(len(train["ids"]))), config()["max_length"], SPECIAL)
    with torch.no_grad():
        pooled = reference.bert(input_ids=batch["ids"], attention_mask=batch["mask"]).pooler_output
    weights = balanced_weights(batch["labels"], 2)
    assert weights.tolist() == pytest.approx([28 / 8, 28 / 48])  # finance (4 lines), sports (24)
    fit_head(reference.classifier, pooled, batch["labels"], 0.02, weights)
    assert torch.allclose(model.classifier.weight, reference.classifier.weight, atol=1e-3)

    trained = {}
    for data_name, data in (("imbalanced", train), ("even", labelled(tmp_path, 14, 14, tokenizer))):
        for weighing in ("none", "balanced"):
            cfg = config(lr=1e-4, warmup_ratio=0.0, class_weights=weighing)
            trained[data_name, weighing] = fit("classify", settings, data, validation, cfg, epochs=1)[1]
    assert trained["imbalanced", "none"][0]["train_loss"] != trained["imbalanced", "balanced"][0]["train_loss"]
    assert trained["even", "none"] == trained["even", "balanced"]


def test_only_the_tasks_with_a_new_classifier_offer_head_init():
    from search.tasks import get_task

    offered = {
        name for name in ("classify", "ner", "lm", "qa", "title") if "head_init" in get_task(name).hyperparameters
    }
    assert offered == {"classify", "ner"}
    weighed = {
        name for name in ("classify", "ner", "lm", "qa", "title") if "class_weights" in get_task(name).hyperparameters
    }
    assert weighed == {"classify"}  # one label per item


@pytest.mark.parametrize("kind", ["ner", "qa", "title"])
def test_each_task_trains_an_epoch_and_reports_its_metrics(tmp_path, model_path, tokenizer, kind):
    data = examples(tmp_path, kind, 16)
    labels = ["O", "B-LOC", "B-PER", "I-PER"] if kind == "ner" else []
    train, validation = (
        KINDS[kind].encode(tokenizer, data[:12], labels),
        KINDS[kind].encode(tokenizer, data[12:], labels),
    )
    settings = settings_for(kind, model_path, tokenizer, labels, schedule_epochs=1)
    _, reports, _ = fit(kind, settings, train, validation, config(max_length=16), epochs=1)
    expected = {"ner": {"val_f1", "val_precision", "val_recall"}, "qa": {"val_mrr", "val_recall_at_1"}, "title": set()}[
        kind
    ]
    assert {"epoch", "train_loss", "val_loss", "stop"} | expected <= set(reports[0])
    assert torch.isfinite(torch.tensor(reports[0]["val_loss"]))
    assert all(0.0 <= reports[0][k] <= 1.0 for k in expected)


def test_lm_batches_count_windows_not_lines():
    """Evaluation and training both batch lm's windows: a long line yields several, all scored."""
    special = {"start": 101, "end": 102, "pad": 0, "mask": 103}
    split = {"lines": [list(range(1000, 1020))]}
    assert lm.size(split) == 1
    split["windows"] = lm_windows(split["lines"], 8, special)
    assert lm.size(split) == len(split["windows"]) == 4  # 20 tokens, 6 per window
