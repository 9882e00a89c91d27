"""Token ids once per data set: what a text task computes from its data with a tokenizer (each split's
ids, the vocabulary coverage) is kept on disk under the image cache's root (tokens/), in a file named
by what went in: the data files' paths, sizes and modification times, how the splits were carved, the
tokenizer's full identity, the task and the encoding cap. A second search, `search resume` and
`search train` on the same data read that file instead of tokenizing again.
"""

import hashlib
import json
import os
import pickle
from collections import Counter
from pathlib import Path

from trainables import decoded
from trainables.features import locked

FOLDER = "tokens"  # in the cache root, beside decoded/ and features/
VERSION = 1  # part of every key: bump it when an encoding changes, and old entries are ignored
computed: Counter = Counter()  # what this process computed rather than read, by what (tests count it)


def tokenizer_identity(tokenizer) -> str:
    """A digest of everything that decides a tokenizer's output: a fast tokenizer's whole definition
    (normaliser, pre-tokeniser, vocabulary, added tokens), else its class and vocabulary. Not its path:
    --extend-vocab saves the same tokenizer into each search's own folder."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = json.loads(backend.to_str())
        text.pop("truncation", None)  # the call's truncation and padding, not the tokenizer's
        text.pop("padding", None)
        text = json.dumps(text, sort_keys=True)
    else:
        text = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def files_identity(files: dict) -> list:
    """(split, path, size, modification time) of each data file: stat, not a hash of the bytes."""
    out = []
    for split, path in sorted(files.items()):
        stat = os.stat(path)
        out.append([split, str(path), stat.st_size, stat.st_mtime_ns])
    return out


def cache_root(storage_path: str | None = None) -> Path:
    """tokens/ beside the decoded images and frozen features (see trainables.decoded.cache_base)."""
    return decoded.cache_base(storage_path) / FOLDER


def entry_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps([VERSION, parts], sort_keys=True, default=str).encode()).hexdigest()[:32]


def remember(folder: Path | None, parts: dict, compute):
    """`compute()`'s value for `parts` (a JSON-able description of what goes into it), from
    `folder` when it holds it, else computed and saved there (atomically, under a lock, so two
    processes at once compute it once). folder None: computed, nothing kept."""
    if folder is None:
        computed[parts.get("what", "?")] += 1
        return compute()
    folder.mkdir(parents=True, exist_ok=True)
    key = entry_key(parts)
    path = folder / f"{key}.pkl"
    with locked(folder / f"{key}.lock"):
        if path.is_file():
            try:
                with open(path, "rb") as f:
                    return pickle.load(f)
            except (OSError, EOFError, pickle.UnpicklingError):  # a damaged entry: compute it again
                pass
        computed[parts.get("what", "?")] += 1
        value = compute()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    return value


def joined(first: dict, second: dict) -> dict:
    """Two encoded splits as one (train + validation for `search train`): every kind's encoding is
    per example, lists under the same keys, so joining the lists is encoding the joined examples."""
    return {key: list(first[key]) + list(second[key]) for key in first}
