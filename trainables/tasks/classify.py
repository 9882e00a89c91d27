"""text classification, from `label<TAB>text` lines

A Xavier-initialised classification head on the encoder's [CLS] output; validation accuracy and
macro-F1. Carved splits are stratified by label. `search predict` gives each line's label and
probabilities; the model exports (logits).
"""

import torch
import torch.nn.functional as F

from trainables import text_data, text_models, text_predict
from trainables.basics import UserError
from trainables.class_scores import per_class
from trainables.heads import new_head
from trainables.text_batches import clip, eval_batches, padded, token_ids
from trainables.text_task import TextKind, labels_seen, make_task


def texts(examples: list) -> list[str]:
    return [text for _, text in examples]


def labels(splits: dict, facts: dict) -> list[str]:
    names = labels_seen(splits, facts, lambda examples: {label for label, _ in examples}, "label")
    if len(names) < 2:
        raise UserError(f"{facts['files']['train']}: only one label ({names[0]}); a classifier needs at least two")
    return names


def carve(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    return text_data.carve(examples, fraction, seed, [label for label, _ in examples])


def encode(tokenizer, examples: list, labels: list[str]) -> dict:
    index = {name: i for i, name in enumerate(labels)}
    return {"ids": token_ids(tokenizer, texts(examples)), "labels": [index[label] for label, _ in examples]}


def size(split: dict) -> int:
    return len(split["ids"])


def make_batch(split: dict, idx: list[int], length: int, special: dict) -> dict:
    ids, mask = padded([clip(split["ids"][i], length) for i in idx], special["pad"])
    return {"ids": ids, "mask": mask, "labels": torch.tensor([split["labels"][i] for i in idx])}


def loss(model, batch: dict, special: dict, vocab_size: int) -> tuple[torch.Tensor, int]:
    """Cross-entropy, each class weighted by batch["class_weights"] when the batch carries them."""
    logits = model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits
    return F.cross_entropy(logits, batch["labels"], weight=batch.get("class_weights")), len(batch["ids"])


def classification_scores(gold: list[int], predicted: list[int], num_classes: int) -> dict:
    """Accuracy and macro-F1 (the mean F1 over the classes that occur in gold or predictions)."""
    correct = sum(g == p for g, p in zip(gold, predicted))
    f1s = []
    for c in range(num_classes):
        tp = sum(g == c and p == c for g, p in zip(gold, predicted))
        fp = sum(g != c and p == c for g, p in zip(gold, predicted))
        fn = sum(g == c and p != c for g, p in zip(gold, predicted))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"val_accuracy": correct / max(len(gold), 1), "val_macro_f1": sum(f1s) / max(len(f1s), 1)}


@torch.no_grad()
def evaluate(model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
    total, count, predictions = 0.0, 0, []
    for idx, batch in eval_batches(KIND, split, length, special, device):
        out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
        total += out.loss.item() * len(idx)
        count += len(idx)
        predictions.extend(out.logits.argmax(-1).cpu().tolist())
    return {"val_loss": total / max(count, 1), **classification_scores(split["labels"], predictions, len(labels))}


def class_report(model, final, config: dict, device) -> dict:
    """Per-label precision, recall, F1 and the confusion matrix on the test split (for metrics.json)."""
    predicted, length, special = [], config["max_length"], final.model.special
    model.eval()
    with torch.no_grad():
        for _idx, batch in eval_batches(KIND, final.test, length, special, device):
            predicted += model(input_ids=batch["ids"], attention_mask=batch["mask"]).logits.argmax(-1).cpu().tolist()
    return per_class(final.test["labels"], predicted, final.model.labels)


AUTO_CLASS = "AutoModelForSequenceClassification"


@torch.no_grad()
def predict(folder, info: dict, inputs: list[str], options: dict, device) -> list[dict]:
    """One row per line: the text, the predicted label and each label's probability; a line in the
    training format (`label<TAB>text`) also keeps its label, as `given`."""
    lines = text_predict.read_lines(inputs)
    model, tokenizer = text_predict.load(folder, info, AUTO_CLASS, device)
    given = ["\t" in line for line in lines]
    texts = [text_predict.last_column(line) for line in lines]
    ids, labels = token_ids(tokenizer, texts), info["labels"]
    length, rows = info["preprocessing"]["max_length"], []
    for idx, x, mask in text_predict.batches(ids, length, tokenizer.pad_token_id, device, options.get("batch_size")):
        for i, p in zip(idx, model(input_ids=x, attention_mask=mask).logits.softmax(-1).cpu().tolist()):
            row = {"text": texts[i], "predicted": labels[max(range(len(p)), key=p.__getitem__)]}
            if any(given):
                row["given"] = lines[i].split("\t", 1)[0].strip() if given[i] else ""
            rows.append(row | {f"prob_{name}": value for name, value in zip(labels, p)})
    return rows


def build_model(name: str, vocab_size: int, num_labels: int, pretrained: bool, special: dict):
    model = text_models.pretrained_model("AutoModelForSequenceClassification", name, pretrained, num_labels=num_labels)
    new_head(model.classifier)
    return text_models.fit_vocabulary(model, vocab_size)


# With --extend-vocab the token embeddings train at the head's rate, as lm's do: at the encoder's the new
# rows barely moved (3,000 Chinese reviews, one epoch at lr 1e-4, head x10: validation 0.577; 0.728 so).
KIND = TextKind(
    format="labelled",
    texts=texts,
    encode=encode,
    size=size,
    make_batch=make_batch,
    loss=loss,
    evaluate=evaluate,
    build_model=build_model,
    labels=labels,
    probe_head=True,
    weighs_classes=True,
    carve=carve,
    embeddings_with_head=True,
    test_extras=class_report,
    predict=predict,
    export_graph=text_predict.text_export(AUTO_CLASS),
)
TASK = make_task(KIND, name="classify", summary=__doc__.splitlines()[0], metric="val_accuracy", mode="max")
