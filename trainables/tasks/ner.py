"""sequence labelling, CoNLL `token TAG` lines with BIO tags

Token classification on the encoder: each word's label sits on its first sub-token (later pieces
and specials are not scored); validation F1 over whole entities, as conlleval counts them.
`search predict` tags CoNLL input (tokens in the first column) and writes CoNLL; the model exports.
"""

import torch

from trainables import text_data, text_models, text_predict
from trainables.basics import UserError
from trainables.class_scores import per_entity_type
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


def word_tags(predictions: list[list[int]], split: dict, labels: list[str], length: int) -> list[list[str]]:
    """Each word's predicted tag (its first sub-token's); a word whose first piece was cut by
    max_length (clip puts [SEP] at length - 1) counts as O."""
    return [
        [labels[p[pos]] if pos < length - 1 else "O" for pos in first] + ["O"] * (len(tags) - len(first))
        for p, first, tags in zip(predictions, split["first"], split["tags"])
    ]


@torch.no_grad()
def tagged(model, split: dict, length: int, special: dict, labels: list[str], device) -> tuple[list, float]:
    """(every sentence's predicted tags, the mean loss per scored token) over an encoded split."""
    total, count, predictions = 0.0, 0, []
    for _idx, batch in eval_batches(KIND, split, length, special, device):
        out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
        k = int((batch["labels"] != -100).sum())
        total += out.loss.item() * k if k else 0.0
        count += k
        predictions.extend(out.logits.argmax(-1).cpu().tolist())
    return word_tags(predictions, split, labels, length), total / max(count, 1)


def evaluate(model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
    predicted, val_loss = tagged(model, split, length, special, labels, device)
    scores = text_data.entity_f1(split["tags"], predicted)
    return {
        "val_loss": val_loss,
        "val_f1": scores["f1"],
        "val_precision": scores["precision"],
        "val_recall": scores["recall"],
    }


def type_report(model, final, config: dict, device) -> dict:
    """Per entity type precision, recall and F1 on the test split (for metrics.json)."""
    model.eval()
    predicted, _ = tagged(model, final.test, config["max_length"], final.model.special, final.model.labels, device)
    return per_entity_type(final.test["tags"], predicted)


AUTO_CLASS = "AutoModelForTokenClassification"


def read_sentences(paths: list[str]) -> list[list[str]]:
    """The tokens (first column) of every sentence of CoNLL input; tags, if any, are ignored."""
    sentences, tokens = [], []
    for line in text_predict.read_lines_kept(paths):
        columns = text_data.conll_columns(line)
        if text_data.is_break(columns):
            if tokens:
                sentences.append(tokens)
            tokens = []
        else:
            tokens.append(columns[0])
    if tokens:
        sentences.append(tokens)
    if not sentences:
        raise UserError(f"no sentences to tag in {', '.join(paths)}")
    return sentences


def predict(folder, info: dict, inputs: list[str], options: dict, device) -> list[tuple[list, list]]:
    """(tokens, predicted tags) of every sentence of the CoNLL input."""
    sentences = read_sentences(inputs)
    model, tokenizer = text_predict.load(folder, info, AUTO_CLASS, device)
    labels = info["labels"]
    blank = labels[0]  # encode needs some gold tag; predictions never read it
    split = encode(tokenizer, [(tokens, [blank] * len(tokens)) for tokens in sentences], labels)
    special = text_predict.special_ids(tokenizer)
    predicted, _ = tagged(model, split, info["preprocessing"]["max_length"], special, labels, device)
    return list(zip(sentences, predicted))


def write_conll(rows: list[tuple[list, list]], stream) -> None:
    """`token TAG` lines, a blank line after each sentence: the format the training data has."""
    for tokens, tags in rows:
        stream.writelines(f"{token} {tag}\n" for token, tag in zip(tokens, tags))
        stream.write("\n")


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
    probe_head=True,
    test_extras=type_report,
    predict=predict,
    write_predictions=write_conll,
    export_graph=text_predict.text_export(AUTO_CLASS),
)
TASK = make_task(KIND, name="ner", summary=__doc__.splitlines()[0], metric="val_f1", mode="max")
