"""Tokenize once per data set and compute a frozen prefix once per node (trainables/text_cache.py,
trainables/text_frozen.py): a second preparation of the same data tokenizes nothing and gives the
same batches, `search train` reads the search's tokens, a changed file is tokenized again; a trial
reading a frozen prefix's shared states reports the same metrics as one computing it every step.
No Ray: the driver's preparation and a trial's fit are called directly."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch
import transformers

from search.options import SearchOptions
from search.tasks import get_task
from tests.conftest import write_text_data
from trainables import text_cache, text_frozen
from trainables.basics import with_defaults
from trainables.tasks import classify


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("SEARCH_CACHE_DIR", str(root))
    return root


@pytest.fixture
def tokenizer_calls(monkeypatch) -> list:
    """Every call of any tokenizer (encoding text) from now on."""
    calls, original = [], transformers.PreTrainedTokenizerBase.__call__

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.PreTrainedTokenizerBase, "__call__", counted)
    return calls


def prepare(data: Path, output: Path, **options):
    task = get_task("classify")
    return task, task.prepare(task, SearchOptions(task="classify", output=output, data=str(data), **options))


def batches(split: dict, special: dict) -> list:
    return [classify.make_batch(split, list(range(i, min(i + 8, len(split["ids"])))), 32, special) for i in (0, 8)]


@pytest.mark.parametrize("extend", [False, True])
def test_a_second_preparation_reads_the_tokens_and_gives_the_same_batches(tmp_path, cache, tokenizer_calls, extend):
    data = write_text_data(tmp_path / "data.tsv", "classify", 60)
    if extend:  # characters the English vocabulary lacks, so --extend-vocab adds tokens
        data.write_text(data.read_text(encoding="utf-8").replace("the ", "华泽普 "), encoding="utf-8")
    before = dict(text_cache.computed)
    _, first = prepare(data, tmp_path / "a", extend_vocab=extend)
    assert tokenizer_calls
    assert sum(text_cache.computed.values()) > sum(before.values())
    assert list((cache / "tokens").glob("*.pkl"))  # the entries, beside decoded/ and features/
    tokenizer_calls.clear()
    computed = dict(text_cache.computed)
    _, second = prepare(data, tmp_path / "b", extend_vocab=extend)  # another search of the same data
    assert tokenizer_calls == [] and dict(text_cache.computed) == computed  # nothing tokenized again
    assert second.data == first.data
    special = first.settings.model.special
    for a, b in zip(batches(first.data["train"], special), batches(second.data["train"], special)):
        assert all(torch.equal(a[key], b[key]) for key in a)
    if extend:
        assert first.record["added_tokens"] > 0 and second.record["added_tokens"] == first.record["added_tokens"]


def test_search_train_reads_the_searchs_tokens_and_a_changed_file_is_tokenized_again(tmp_path, cache, tokenizer_calls):
    data = write_text_data(tmp_path / "data.tsv", "classify", 60)
    task, prepared = prepare(data, tmp_path / "a", extend_vocab=True)
    tokenizer_calls.clear()
    final = task.final_data(task, prepared.record, None, True)  # best.yaml carries the record
    assert tokenizer_calls == []
    assert final.train == text_cache.joined(prepared.data["train"], prepared.data["validation"])
    assert len(final.test["ids"]) > 0
    os.utime(data, ns=(1, 1))  # the same bytes, another modification time: no longer the same file
    prepare(data, tmp_path / "b")
    assert tokenizer_calls


def test_the_tokenizers_identity_survives_saving_it_and_differs_when_extended(tmp_path):
    from trainables import text_models

    path, _ = text_models.resolve_model(None)
    tokenizer = text_models.load_tokenizer(path)
    plain = text_cache.tokenizer_identity(tokenizer)
    tokenizer.add_tokens(["华泽"])
    tokenizer.save_pretrained(tmp_path / "tok")
    extended = text_cache.tokenizer_identity(tokenizer)
    assert extended != plain
    assert text_cache.tokenizer_identity(text_models.load_tokenizer(str(tmp_path / "tok"))) == extended


def fit_metrics(task_name: str, prepared, config: dict, share: bool, epochs: int = 2) -> list[dict]:
    model = dataclasses.replace(prepared.settings.model, share_prefix=share)
    settings = dataclasses.replace(prepared.settings, model=model, epochs=epochs, schedule_epochs=2)
    reports = []
    task = get_task(task_name)
    config = with_defaults(task.hyperparameters, config)
    task.fit(config, settings, prepared.data["train"], prepared.data["validation"], lambda m, s: reports.append(m))
    return reports


CONFIG = {"lr": 2e-4, "batch_size": 8, "frozen_layers": 4, "max_length": 32, "warmup_ratio": 0.0}


def test_shared_frozen_states_give_the_same_metrics_as_computing_them_every_step(tmp_path, cache, monkeypatch):
    data = write_text_data(tmp_path / "data.tsv", "classify", 80)
    _, prepared = prepare(data, tmp_path / "a")
    computed = []
    original = text_frozen.compute_states
    monkeypatch.setattr(text_frozen, "compute_states", lambda *a, **k: computed.append(1) or original(*a, **k))
    text_frozen._states.clear()
    shared = fit_metrics("classify", prepared, CONFIG, share=True)
    assert len(computed) == 2  # train's and validation's sequences, once
    assert len(list((cache / "text_states").glob("*.npy"))) == 2
    on_the_fly = fit_metrics("classify", prepared, CONFIG, share=False)
    for a, b in zip(shared, on_the_fly, strict=True):
        assert a["val_accuracy"] == b["val_accuracy"]
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
    text_frozen._states.clear()  # another process on the node: maps the files, computes nothing
    again = fit_metrics("classify", prepared, CONFIG, share=True, epochs=1)
    assert len(computed) == 2 and again[0]["val_loss"] == pytest.approx(shared[0]["val_loss"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name, metric", [("ner", "val_f1"), ("qa", "val_mrr"), ("title", "val_loss")])
def test_the_other_encoders_read_shared_states_with_the_same_metrics(tmp_path, cache, tiny_text, name, metric):
    task = get_task(name)
    options = SearchOptions(task=name, output=tmp_path / "a", data=str(tiny_text[name]), max_epochs=1)
    prepared = task.prepare(task, options)
    shared = fit_metrics(name, prepared, CONFIG, share=True, epochs=1)
    assert list((cache / "text_states").glob("*.npy"))
    on_the_fly = fit_metrics(name, prepared, CONFIG, share=False, epochs=1)
    assert shared[0][metric] == pytest.approx(on_the_fly[0][metric], abs=1e-4)
    assert shared[0]["val_loss"] == pytest.approx(on_the_fly[0]["val_loss"], abs=1e-4)


def test_a_frozen_prefix_is_not_shared_when_the_embeddings_train():
    from trainables import text_models

    path, _ = text_models.resolve_model(None)
    model = classify.build_model(path, 30522, 2, True, {})
    assert text_frozen.shareable(model, 3, embeddings_train=False)
    assert not text_frozen.shareable(model, 3, embeddings_train=True)  # --extend-vocab's rows train
    assert not text_frozen.shareable(model, 0, embeddings_train=False)
