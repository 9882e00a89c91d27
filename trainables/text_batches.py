"""Token ids to tensors, for every text task: examples are tokenized once (up to ENCODE_CAP
tokens) on the driver; a trial truncates them to its `max_length` (keeping the final [SEP]) and
pads each batch to its own longest sequence, never to max_length. Training batches group examples
of similar length (shuffled windows, sorted within), so little of a batch is padding.
"""

import torch

from trainables.devices import to_device

ENCODE_CAP = 512  # tokens kept at encoding; each trial truncates further to its max_length
# Evaluation batches. lm draws its evaluation masks per batch, so this also fixes which tokens are
# masked: changing it changes the perplexity reported for the same model.
EVAL_BATCH = 64
BUCKET_BATCHES = 50  # batches per sorting window: wide enough to find similar lengths, narrow enough to stay random


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


def bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled training batches of similar lengths: the shuffled order is cut into windows of
    BUCKET_BATCHES batches, each window sorted by length and cut into batches, and the batches
    shuffled (HF's group_by_length). Measured on 2,400 Chinese reviews cut at 64 tokens: 28% fewer
    padded tokens per epoch than plain shuffled batches, so 28% less compute for the same examples."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def eval_batches(kind, split: dict, length: int, special: dict, device):
    """(indices, batch on `device`) over a whole split in order, EVAL_BATCH at a time."""
    for idx in index_batches(kind.size(split), EVAL_BATCH):
        yield idx, to_device(kind.make_batch(split, idx, length, special), device)
