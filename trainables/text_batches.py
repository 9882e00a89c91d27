"""Token ids to tensors, for every text task: examples are tokenized once (up to ENCODE_CAP
tokens) on the driver; a trial truncates them to its `max_length` (keeping the final [SEP]) and
pads each batch to its own longest sequence, never to max_length.
"""

import torch

from trainables.devices import to_device

ENCODE_CAP = 512  # tokens kept at encoding; each trial truncates further to its max_length
# Evaluation batches. lm draws its evaluation masks per batch, so this also fixes which tokens are
# masked: changing it changes the perplexity reported for the same model.
EVAL_BATCH = 64


def token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text's ids with [CLS] ... [SEP], cut at ENCODE_CAP."""
    return tokenizer(texts, truncation=True, max_length=ENCODE_CAP)["input_ids"]


def clip(ids: list[int], length: int) -> list[int]:
    """At most `length` ids, keeping the final [SEP]."""
    return ids if len(ids) <= length else ids[: length - 1] + ids[-1:]


def padded(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), padded to the longest sequence of this batch (not to max_length)."""
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, (ids != pad).long()


def padded_labels(rows: list[list[int]], width: int) -> torch.Tensor:
    """Label rows padded (and cut) to `width` with -100, which losses ignore."""
    out = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r[:width], dtype=torch.long)
    return out


def index_batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """Batches of indices into a split: shuffled by `generator` (training), else in order."""
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def eval_batches(kind, split: dict, length: int, special: dict, device):
    """(indices, batch on `device`) over a whole split in order, EVAL_BATCH at a time."""
    for idx in index_batches(kind.size(split), EVAL_BATCH):
        yield idx, to_device(kind.make_batch(split, idx, length, special), device)
