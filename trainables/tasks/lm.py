"""continued masked-LM pretraining on a plain corpus, one text per line

BERT's recipe: 15% of the real tokens are predicted, of those 80% shown as [MASK], 10% as a random
token, 10% as they are. Lines are cut into max_length windows, so every token is read each epoch;
the validation metric is the perplexity of the masked tokens (the same masks at every evaluation).
`search predict` gives each line's pseudo-perplexity; the model exports (masked-LM logits).
"""

import math
import sys

import torch
import torch.nn.functional as F

from trainables import text_models, text_predict
from trainables.text_batches import clip, eval_batches, padded, token_ids
from trainables.text_task import TextKind, make_task

MASK_SHARE = 0.15  # BERT's masked-LM recipe


def texts(examples: list) -> list[str]:
    return examples


def encode(tokenizer, examples: list, labels: list[str]) -> dict:
    """No [CLS]/[SEP] yet: lines are cut into max_length windows per trial."""
    return {"lines": [ids for ids in tokenizer(examples, add_special_tokens=False)["input_ids"] if ids]}


def lm_windows(lines: list[list[int]], length: int, special: dict) -> list[list[int]]:
    """Each line cut into windows of `length` tokens with [CLS] ... [SEP], so all of it is read."""
    step = length - 2
    return [[special["start"], *ids[i : i + step], special["end"]] for ids in lines for i in range(0, len(ids), step)]


def for_length(split: dict, length: int, special: dict) -> dict:
    """The split with its windows for this max_length (what batches index)."""
    return {**split, "windows": lm_windows(split["lines"], length, special)}


def size(split: dict) -> int:
    """Windows once cut for a max_length (what make_batch indexes), before that lines."""
    return len(split["windows"] if "windows" in split else split["lines"])


def lines_of(split: dict) -> list:
    return split["lines"]


def window_lengths(split: dict) -> list[int]:
    return [len(window) for window in split["windows"]]


def make_batch(split: dict, idx: list[int], length: int, special: dict) -> dict:
    ids, mask = padded([split["windows"][i] for i in idx], special["pad"])
    return {"ids": ids, "mask": mask}


def mask_tokens(
    ids: torch.Tensor, mask: torch.Tensor, special: dict, vocab_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: 15% of the real tokens are predicted; of those 80% become [MASK], 10% a random
    token, 10% stay. Returns (input ids, labels with -100 where nothing is predicted)."""
    specials = (ids == special["start"]) | (ids == special["end"]) | (mask == 0)
    rand = torch.rand(ids.shape, generator=generator)
    chosen = (rand < MASK_SHARE) & ~specials
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    how = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (how < 0.8)] = special["mask"]
    swap = chosen & (how >= 0.8) & (how < 0.9)
    inputs[swap] = torch.randint(vocab_size, ids.shape, generator=generator)[swap]
    return inputs, labels


def mlm_loss(model, ids, mask, labels) -> tuple[torch.Tensor, int]:
    picked = labels != -100
    n = int(picked.sum())
    if n == 0:  # a batch of very short lines can draw no mask: nothing to learn from it
        return (model.get_input_embeddings().weight.sum() * 0.0), 0
    if hasattr(model, "cls"):  # BERT: score only the masked positions against the vocabulary (~6x less work)
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return F.cross_entropy(model.cls(hidden[picked]), labels[picked]), n
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss, n


def masked_loss(model, batch: dict, special: dict, vocab_size: int, generator=None) -> tuple[torch.Tensor, int]:
    """mlm_loss on a batch masked on the CPU (so a seeded generator draws the same masks anywhere)."""
    device = batch["ids"].device
    inputs, labels = mask_tokens(batch["ids"].cpu(), batch["mask"].cpu(), special, vocab_size, generator)
    return mlm_loss(model, inputs.to(device), batch["mask"], labels.to(device))


def loss(model, batch: dict, special: dict, vocab_size: int) -> tuple[torch.Tensor, int]:
    return masked_loss(model, batch, special, vocab_size)


@torch.no_grad()
def evaluate(model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
    total, count = 0.0, 0
    masks = torch.Generator().manual_seed(
        1234
    )  # the same masked positions at every evaluation: comparable perplexities
    for _idx, batch in eval_batches(KIND, split, length, special, device):
        batch_loss, k = masked_loss(model, batch, special, vocab_size, masks)
        total += batch_loss.item() * k
        count += k
    val_loss = total / max(count, 1)
    return {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50.0))}  # exp(50): beyond, only "diverged"


AUTO_CLASS = "AutoModelForMaskedLM"


@torch.no_grad()
def pseudo_perplexity(model, ids: list[int], mask_id: int, device) -> float:
    """exp of the mean -log p(token) with each real token masked in turn (Salazar et al., 2020): a
    masked LM's perplexity for one text, the same whatever the batch, no random masks."""
    inner = range(1, len(ids) - 1)  # not [CLS] / [SEP]
    if not inner:
        return float("nan")
    batch = torch.tensor([ids] * len(inner))
    positions = torch.tensor(list(inner))
    batch[torch.arange(len(inner)), positions] = mask_id
    logits = model(input_ids=batch.to(device)).logits[torch.arange(len(inner)), positions.to(device)]
    nll = F.cross_entropy(logits, torch.tensor(ids[1:-1], device=logits.device))
    return math.exp(min(nll.item(), 50.0))  # exp(50): beyond, only "diverged"


def predict(folder, info: dict, inputs: list[str], options: dict, device) -> list[dict]:
    """Each line's pseudo-perplexity (cut at the trained max_length) and how many tokens it scored."""
    lines = text_predict.read_lines(inputs)
    model, tokenizer = text_predict.load(folder, info, AUTO_CLASS, device)
    length, rows = info["preprocessing"]["max_length"], []
    for i, ids in enumerate(token_ids(tokenizer, lines)):
        ids = clip(ids, length)
        rows.append({"text": lines[i], "perplexity": pseudo_perplexity(model, ids, tokenizer.mask_token_id, device)})
        rows[-1]["tokens"] = len(ids) - 2
        if len(lines) > 100 and (i + 1) % 100 == 0:
            print(f"predict: {i + 1}/{len(lines)} lines", file=sys.stderr, flush=True)
    return rows


def build_model(name: str, vocab_size: int, num_labels: int, pretrained: bool, special: dict):
    """A masked LM on the encoder (the MLM head is new when the checkpoint has none)."""
    return text_models.fit_vocabulary(
        text_models.pretrained_model("AutoModelForMaskedLM", name, pretrained), vocab_size
    )


# With --extend-vocab the token embeddings (the MLM decoder's tied weights, thousands of rows new)
# train at the head's rate: at the encoder's rate the new rows barely moved.
KIND = TextKind(
    format="corpus",
    texts=texts,
    encode=encode,
    size=size,
    make_batch=make_batch,
    loss=loss,
    evaluate=evaluate,
    build_model=build_model,
    for_length=for_length,
    embeddings_with_head=True,
    encoder_inputs=lines_of,
    item_lengths=window_lengths,
    shares_prefix=False,  # masks change the ids every batch: the prefix's output is never the same twice
    windowed=True,
    predict=predict,
    export_graph=text_predict.text_export(AUTO_CLASS),
)
TASK = make_task(KIND, name="lm", summary=__doc__.splitlines()[0], metric="val_perplexity", mode="min")
