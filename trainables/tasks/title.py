"""generation, content -> title, from `title<TAB>content` lines

An encoder-decoder warm-started from the encoder on both sides (the decoder's cross-attention starts
new and trains at the head's rate); validation loss per target token. `search train` also generates
titles for the test split and scores them with ROUGE-L. `search predict` generates a title for each
line; the model does not export (generation is a loop of decoder passes, not one graph).
"""

import re

import torch

from trainables import text_models, text_predict
from trainables.task import cannot_export
from trainables.text_batches import EVAL_BATCH, clip, eval_batches, padded, padded_labels, token_ids
from trainables.text_task import TextKind, carve_groups, make_task, pair_texts


def encode(tokenizer, examples: list, labels: list[str]) -> dict:
    """Targets start after [CLS]: the decoder is started with it."""
    return {
        "source": token_ids(tokenizer, [content for _, content in examples]),
        "target": [ids[1:] for ids in token_ids(tokenizer, [t for t, _ in examples])],
    }


def size(split: dict) -> int:
    return len(split["source"])


def sources(split: dict) -> list:
    return split["source"]


def source_lengths(split: dict) -> list[int]:
    return [len(ids) for ids in split["source"]]


def make_batch(split: dict, idx: list[int], length: int, special: dict) -> dict:
    ids, mask = padded([clip(split["source"][i], length) for i in idx], special["pad"])
    targets = [clip(split["target"][i], length) for i in idx]
    return {"ids": ids, "mask": mask, "labels": padded_labels(targets, max(len(t) for t in targets))}


def loss(model, batch: dict, special: dict, vocab_size: int) -> tuple[torch.Tensor, int]:
    out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
    return out.loss, int((batch["labels"] != -100).sum())


@torch.no_grad()
def evaluate(model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
    total, count = 0.0, 0
    for _idx, batch in eval_batches(KIND, split, length, special, device):
        batch_loss, k = loss(model, batch, special, vocab_size)
        total += batch_loss.item() * k
        count += k
    return {"val_loss": total / max(count, 1)}


def build_model(name: str, vocab_size: int, num_labels: int, pretrained: bool, special: dict):
    model = text_models.encoder_decoder(name, pretrained, special)
    for part in (model.encoder, model.decoder):
        text_models.fit_vocabulary(part, vocab_size)
    return model


def encoder_of(model):
    return model.encoder  # frozen_layers counts encoder stages only; the decoder always trains


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 on words (each CJK character a word): longest common subsequence."""
    unit = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
    p, r = unit.findall(prediction.lower()), unit.findall(reference.lower())
    if not p or not r:
        return 0.0
    previous = [0] * (len(r) + 1)
    for a in p:
        current = [0]
        for j, b in enumerate(r):
            current.append(previous[j] + 1 if a == b else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(p) + len(r))


@torch.no_grad()
def generate_titles(model, tokenizer, contents: list[list[int]], length: int, special: dict, device) -> list[str]:
    model.eval()
    titles = []
    for i in range(0, len(contents), EVAL_BATCH):
        ids, mask = padded([clip(c, length) for c in contents[i : i + EVAL_BATCH]], special["pad"])
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=32, num_beams=1, do_sample=False
        )
        titles.extend(tokenizer.batch_decode(out, skip_special_tokens=True))
    return titles


def test_rouge(model, final, config: dict, device) -> dict:
    """Titles generated for the test split, scored against the real ones; three shown."""
    examples = final.extra["test_examples"]
    titles = generate_titles(
        model, final.extra["tokenizer"], final.test["source"], config["max_length"], final.model.special, device
    )
    score = sum(rouge_l(p, reference) for p, (reference, _) in zip(titles, examples)) / len(examples)
    for (reference, content), title in list(zip(examples, titles))[:3]:
        print(f"  {content[:60]!r} -> {title!r} (reference {reference!r})")
    return {"test_rouge_l": score}


def predict(folder, info: dict, inputs: list[str], options: dict, device) -> list[dict]:
    """A generated title for each line (a `title<TAB>content` line's content, its title kept as `given`)."""
    lines = text_predict.read_lines(inputs)
    model, tokenizer = text_predict.load(folder, info, "EncoderDecoderModel", device)
    contents = [text_predict.last_column(line) for line in lines]
    ids = token_ids(tokenizer, contents)
    special = text_predict.special_ids(tokenizer)
    titles = generate_titles(model, tokenizer, ids, info["preprocessing"]["max_length"], special, device)
    rows = [{"content": content, "title": title} for content, title in zip(contents, titles)]
    if any("\t" in line for line in lines):
        for row, line in zip(rows, lines):
            row["given"] = line.split("\t", 1)[0].strip() if "\t" in line else ""
    return rows


KIND = TextKind(
    format="pairs",
    texts=pair_texts,
    encode=encode,
    size=size,
    make_batch=make_batch,
    loss=loss,
    evaluate=evaluate,
    build_model=build_model,
    encoder_of=encoder_of,
    carve=carve_groups,
    unique_examples=True,
    encoder_inputs=sources,
    item_lengths=source_lengths,
    test_extras=test_rouge,
    predict=predict,
    export_graph=cannot_export(
        "a title is generated token by token (a loop of decoder passes over the encoder's output), not by one "
        "forward pass; use `search predict`"
    ),
)
TASK = make_task(KIND, name="title", summary=__doc__.splitlines()[0], metric="val_loss", mode="min")
