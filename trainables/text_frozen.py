"""Frozen-prefix hidden states, computed once per node and shared by the trials: when a trial freezes
the embeddings and the first transformer layers (and nothing makes the embeddings train), their output
for an example depends only on its token ids. The first trial on a node computes it for every
sequence the trial reads (under a lock, as trainables/features.py does for images), saves it per
example (lengths vary: one flat (tokens, width) array, rows in sequence order) and every later trial
maps it; the trial's forward pass then starts above the prefix, looking each row up by its ids.
"""

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.features import computed_once, pace, remember
from trainables.text_batches import EVAL_BATCH, clip, padded

RAM_BYTES = 2 * 2**30  # states a process keeps in RAM across its trials (a reused actor runs many)
# A trial's states larger than this are not shared (computed every step instead): 8 GB is 55,000 examples
# of 100 tokens at MiniLM's width (384 x 4 bytes a token), and features.py's disk cache holds 20 GB
MAX_BYTES = 8 * 2**30
_states: OrderedDict = OrderedDict()


def body_layers(encoder: nn.Module) -> nn.ModuleList | None:
    """The transformer layers of a BERT-style encoder (encoder.layer), None for another kind."""
    base = encoder.base_model
    return getattr(getattr(base, "encoder", None), "layer", None)


def shareable(encoder: nn.Module, frozen: int, embeddings_train: bool) -> bool:
    """Whether the first `frozen` stages can be computed once: some are frozen, the token embeddings
    do not train (--extend-vocab's always do), and the encoder is BERT-style with that many stages."""
    layers = body_layers(encoder)
    return frozen >= 1 and not embeddings_train and layers is not None and frozen - 1 <= len(layers)


@torch.no_grad()
def compute_states(encoder: nn.Module, sequences: list[list[int]], frozen: int, pad: int, device) -> np.ndarray:
    """The output of the first `frozen` stages (embeddings, then frozen - 1 layers) for every sequence,
    its real tokens only, stacked: (total tokens, width) float32, rows in sequence order. In eval mode,
    as the loop keeps frozen stages; sequences of similar length go together, so little is padding."""
    base, layers = encoder.base_model, body_layers(encoder)
    was_training = base.training
    base.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    width = base.config.hidden_size
    offsets = np.cumsum([0] + [len(s) for s in sequences])
    out = np.zeros((int(offsets[-1]), width), dtype=np.float32)
    base.encoder.layer = nn.ModuleList(list(layers)[: frozen - 1])  # the prefix alone: no work above it
    try:
        for start in range(0, len(order), EVAL_BATCH):
            pace()  # threads lent by trials waiting for these states
            rows = order[start : start + EVAL_BATCH]
            ids, mask = padded([sequences[i] for i in rows], pad)
            hidden = base(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
            for row, i in enumerate(rows):
                out[offsets[i] : offsets[i + 1]] = hidden[row, : len(sequences[i])].numpy()
    finally:
        base.encoder.layer = layers
        base.train(was_training)
    return out


def states_key(encoder: nn.Module, frozen: int, sequences: list[list[int]]) -> str:
    """Names exactly these states: the prefix's weights (all of them hashed: the prefix is a few MB),
    its depth and the sequences."""
    digest = hashlib.sha256(f"{type(encoder.base_model).__name__} {frozen}".encode())
    prefix = [encoder.base_model.embeddings, *list(body_layers(encoder))[: frozen - 1]]
    for stage in prefix:
        for name, tensor in stage.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(sequences).encode())
    return digest.hexdigest()[:32]


def shared_states(encoder, sequences, frozen: int, pad: int, device, folder: str | None) -> torch.Tensor:
    """compute_states, once per node: from this process's RAM, else the node's file (mapped), else
    computed and saved (under a lock: a second trial waits, then maps it). folder None, or a GPU:
    computed in this process only."""
    key = states_key(encoder, frozen, sequences)
    if key in _states:
        _states.move_to_end(key)
        return _states[key]
    if folder is None or torch.device(device).type != "cpu":
        states = torch.from_numpy(compute_states(encoder, sequences, frozen, pad, device))
    else:
        states = computed_once(Path(folder), key, lambda: compute_states(encoder, sequences, frozen, pad, device))
    remember(_states, key, states, RAM_BYTES)
    return states


class Lookup:
    """The prefix's output for a batch of ids, read from the shared states: each row's real tokens
    (trailing [PAD]s dropped; a sequence ends in [SEP], never in [PAD]) name its example."""

    def __init__(self, parts: list[tuple[list[list[int]], torch.Tensor]], pad: int):
        self.pad, self.rows = pad, {}
        for sequences, states in parts:
            start = 0
            for seq in sequences:
                self.rows[tuple(seq)] = (states, start)
                start += len(seq)

    def __call__(self, input_ids=None, **ignored) -> torch.Tensor:
        ids = input_ids.cpu()
        first = next(iter(self.rows.values()))[0]
        out = torch.zeros((*ids.shape, first.shape[1]), dtype=torch.float32)
        for b, row in enumerate(ids.tolist()):
            n = len(row)
            while n and row[n - 1] == self.pad:
                n -= 1
            states, start = self.rows[tuple(row[:n])]  # KeyError: a sequence the states were not made for
            out[b, :n] = states[start : start + n]
        return out.to(input_ids.device)


def passthrough(hidden_states, *args, **kwargs):
    return hidden_states


def start_above_prefix(
    encoder: nn.Module, frozen: int, split_sequences: list[list[list[int]]], length: int, pad: int, device, folder
):
    """Make `encoder` read its first `frozen` stages' output from the shared states of every sequence
    in `split_sequences` (cut at `length`, as batches cut them): the embeddings look rows up, the
    frozen layers pass their input on. Parameters and state_dict stay as they are (checkpoints load
    into the plain model). Returns a function that undoes it, or None when the states would pass
    MAX_BYTES (nothing changed: the prefix runs in every step)."""
    base, layers = encoder.base_model, body_layers(encoder)
    cuts = [[clip(seq, length) for seq in sequences] for sequences in split_sequences]
    if sum(len(seq) for cut in cuts for seq in cut) * base.config.hidden_size * 4 > MAX_BYTES:
        return None
    parts = [(cut, shared_states(encoder, cut, frozen, pad, device, folder)) for cut in cuts]
    patched = [base.embeddings, *list(layers)[: frozen - 1]]
    base.embeddings.forward = Lookup(parts, pad)
    for layer in patched[1:]:
        layer.forward = passthrough

    def undo():
        for module in patched:
            del module.forward  # the class's forward again

    return undo
