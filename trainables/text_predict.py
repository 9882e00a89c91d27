"""What the text tasks' saved models share at prediction and export: loading `search train`'s model/
folder (weights and tokenizer), reading input lines, tokenizing them the way the test split was
(cut at the trained max_length, batches of the evaluation's size), and the single-pass graph that
`search export` traces for the encoder tasks (ids and attention mask in, one tensor out).
"""

import sys
from pathlib import Path

from torch import nn

from trainables import text_data, text_models
from trainables.basics import UserError
from trainables.task import Exportable
from trainables.text_batches import EVAL_BATCH, clip, padded, token_ids
from trainables.text_task import special_ids

SAMPLE_TEXTS = ("the first example", "a second, somewhat longer example sentence", "third")  # export's inputs


def load(folder: Path, info: dict, auto_class: str, device):
    """(model in eval mode on `device`, tokenizer) from the model folder."""
    path = str(folder / info["model_file"])
    model = text_models.pretrained_model(auto_class, path)
    return model.eval().to(device), text_models.load_tokenizer(path)


def read_lines_kept(paths: list[str]) -> list[str]:
    """Every line of the input files, blank ones kept (UTF-8; a BOM, CRLF and trailing blanks are fine)."""
    out = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UserError(f"no such file: {given}")
        lines, undecodable = text_data.decode_lines(path)
        for n, line in enumerate(lines, 1):
            if line is None:
                raise UserError(f"{path}:{n}: {undecodable[n]}")
            out.append(line.rstrip())
    return out


def read_lines(paths: list[str]) -> list[str]:
    """Every non-blank line of the input files."""
    out = [line for line in read_lines_kept(paths) if line.strip()]
    if not out:
        raise UserError(f"no text to predict in {', '.join(paths)}")
    return out


def last_column(line: str) -> str:
    """A training-format line (`label<TAB>text`, `title<TAB>content`) read as its text; else the line."""
    return line.split("\t", 1)[1].strip() if "\t" in line else line.strip()


def batches(ids: list[list[int]], length: int, pad: int, device, size: int | None = None):
    """(indices, ids, mask) over `ids` in order, each cut at `length`, padded per batch of `size`
    (default the evaluation's, so a test file predicts exactly as it was scored)."""
    size = size or EVAL_BATCH
    for start in range(0, len(ids), size):
        idx = list(range(start, min(start + size, len(ids))))
        x, mask = padded([clip(ids[i], length) for i in idx], pad)
        if len(ids) > size:
            print(f"predict: {idx[-1] + 1}/{len(ids)}", file=sys.stderr, flush=True)
        yield idx, x.to(device), mask.to(device)


class TextForward(nn.Module):
    """ids and attention mask -> `output(model, ids, mask)`: the tensors-only module export traces."""

    def __init__(self, model, output):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, input_ids, attention_mask):
        return self.output(self.model, input_ids, attention_mask)


def logits(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask).logits


def text_export(auto_class: str, output=logits, output_name: str = "logits"):
    """An export_graph for a single-pass encoder task: the model folder's model through `output`."""

    def export_graph(folder: Path, info: dict) -> Exportable:
        model, tokenizer = load(folder, info, auto_class, "cpu")
        pad = special_ids(tokenizer)["pad"]
        ids = token_ids(tokenizer, list(SAMPLE_TEXTS))
        trace, check = padded(ids[:2], pad), padded(ids, pad)  # two lengths, two batch sizes
        return Exportable(
            module=TextForward(model, output),
            inputs=trace,
            check_inputs=check,
            input_names=("input_ids", "attention_mask"),
            output_name=output_name,
            dynamic={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask")},
            write_beside=tokenizer.save_pretrained,
        )

    return export_graph
