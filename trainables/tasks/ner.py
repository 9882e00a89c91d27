"""sequence labelling, CoNLL `token TAG` lines with BIO tags

Token classification on the encoder: each word's label sits on its first sub-token (later pieces
and specials are not scored); validation F1 over whole entities, as conlleval counts them.
"""

import torch

from trainables import text_data, text_models
from trainables.heads import new_head
from trainables.text_batches import ENCODE_CAP, clip, eval_batches, padded, padded_labels
from trainables.text_task import TextKind, labels_seen, make_task


def texts(examples: list) -> list[str]:
    return [" ".join(tokens) for tokens, _ in examples]


def labels(splits: dict, facts: dict) -> list[str]:
    return labels_seen(splits, facts, lambda examples: {t for _, tags in examples for t in tags}, "tag")


def encode(tokenizer, examples: list, labels: list[str]) -> dict:
    """Ids, per-token labels (-100 where not scored), each word's first position, the gold tags."""
    index = {name: i for i, name in enumerate(labels)}
    encoded = tokenizer(
        [tokens for tokens, _ in examples], is_split_into_words=True, truncation=True, max_length=ENCODE_CAP
    )
    out = {"ids": [], "token_labels": [], "first": [], "tags": []}
    for i, (_tokens, tags) in enumerate(examples):
        first, token_labels, seen = [], [], set()
        for position, word in enumerate(encoded.word_ids(i)):
            if word is None or word in seen:
                token_labels.append(-100)  # specials and later sub-words: not scored
            else:
                seen.add(word)
                first.append(position)
                token_labels.append(index[tags[word]])
        out["ids"].append(encoded["input_ids"][i])
        out["token_labels"].append(token_labels)
        out["first"].append(first)  # a word past the cap has no entry: it counts as predicted O
        out["tags"].append(tags)
    return out


def size(split: dict) -> int:
    return len(split["ids"])


def make_batch(split: dict, idx: list[int], length: int, special: dict) -> dict:
    ids, mask = padded([clip(split["ids"][i], length) for i in idx], special["pad"])
    rows = [
        split["token_labels"][i][: length - 1] + [-100]
        if len(split["token_labels"][i]) > length
        else split["token_labels"][i]
        for i in idx
    ]
    return {"ids": ids, "mask": mask, "labels": padded_labels(rows, ids.shape[1])}


def loss(model, batch: dict, special: dict, vocab_size: int) -> tuple[torch.Tensor, int]:
    out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
    return out.loss, int((batch["labels"] != -100).sum())


@torch.no_grad()
def evaluate(model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
    total, count, predictions = 0.0, 0, []
    for _idx, batch in eval_batches(KIND, split, length, special, device):
        out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
        k = int((batch["labels"] != -100).sum())
        total += out.loss.item() * k
        count += k
        predictions.extend(out.logits.argmax(-1).cpu().tolist())
    # a word whose first piece was cut by max_length (clip puts [SEP] at length - 1) counts as O
    predicted = [
        [labels[p[pos]] if pos < length - 1 else "O" for pos in first] + ["O"] * (len(tags) - len(first))
        for p, first, tags in zip(predictions, split["first"], split["tags"])
    ]
    scores = text_data.entity_f1(split["tags"], predicted)
    return {
        "val_loss": total / max(count, 1),
        "val_f1": scores["f1"],
        "val_precision": scores["precision"],
        "val_recall": scores["recall"],
    }


def build_model(name: str, vocab_size: int, num_labels: int, pretrained: bool, special: dict):
    model = text_models.pretrained_model("AutoModelForTokenClassification", name, pretrained, num_labels=num_labels)
    new_head(model.classifier)
    return text_models.fit_vocabulary(model, vocab_size)


KIND = TextKind(
    format="conll",
    texts=texts,
    encode=encode,
    size=size,
    make_batch=make_batch,
    loss=loss,
    evaluate=evaluate,
    build_model=build_model,
    labels=labels,
)
TASK = make_task(KIND, name="ner", summary=__doc__.splitlines()[0], metric="val_f1", mode="max")
