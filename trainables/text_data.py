"""Text data for the text tasks: parse the four line formats (corpus, pairs, labelled, conll) with
errors that name the file and line, find train / validation / test files, carve a seeded validation
split, describe a data set in a line, and score BIO tagging the way conlleval does.

    examples, skipped = read_examples(Path("ner/train.txt"), "conll")
"""

import random
import re
from collections import Counter
from pathlib import Path

from trainables.basics import UserError

FORMATS = ("corpus", "pairs", "labelled", "conll")
SPLIT_NAMES = {"train": ("train",), "validation": ("dev", "valid", "validation"), "test": ("test",)}
BOM = b"\xef\xbb\xbf"
COLUMNS = re.compile(r"[ \t]+")  # ASCII blanks only: a full-width space (U+3000) is a real token in Chinese text
MAX_LISTED = 10  # labels / directory entries named in one message before "... and N more"
DOCSTART = "-DOCSTART-"  # CoNLL-2003's document separator ('-DOCSTART- -X- -X- O'): a sentence break, not a sentence


class BadLine(Exception):
    """One malformed line; read_examples turns it into a UserError or a skip."""


def decode_lines(path: Path) -> tuple[list[str | None], dict[int, str]]:
    """The file's lines (split at \\n only, so U+2028 or \\x1c inside a text keeps line numbers right),
    a leading BOM dropped; an undecodable line is None, with its reason under its 1-based number."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a directory, expected a file")
    data = path.read_bytes()
    data = data.removeprefix(BOM)
    if not data.strip():
        raise UserError(f"{path}: no examples (the file is empty)")
    try:
        return data.decode("utf-8").split("\n"), {}
    except UnicodeDecodeError:  # rare: decode line by line to find (or skip) the bad ones
        pass
    lines, undecodable = [], {}
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            lines.append(None)
            undecodable[n] = f"not UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line)"
    return lines, undecodable


def split_at_tab(line: str, expected: str) -> tuple[str, str] | None:
    """'a<TAB>b' -> (a, b), both stripped and non-empty; None for a blank line. Split before any
    stripping, so 'a<TAB>' reads as an empty second side rather than as a line with no tab."""
    first, tab, second = line.partition("\t")
    if not tab:
        if not first.strip():
            return None
        raise BadLine(f"expected '{expected}', found no tab")
    first, second = first.strip(), second.strip()
    if not first:
        raise BadLine(f"expected '{expected}', found nothing before the tab")
    if not second:
        raise BadLine(f"expected '{expected}', found nothing after the tab")
    return first, second


def parse_corpus(line: str) -> str | None:
    return line.strip() or None


def parse_pair(line: str) -> tuple[str, str] | None:
    return split_at_tab(line, "first<TAB>second")


def parse_labelled(line: str) -> tuple[str, str] | None:
    return split_at_tab(line, "label<TAB>text")


LINE_PARSERS = {"corpus": parse_corpus, "pairs": parse_pair, "labelled": parse_labelled}


def read_line_examples(
    path: Path, lines: list, undecodable: dict[int, str], parse, skip_bad_lines: bool
) -> tuple[list, int]:
    examples, skipped = [], 0
    for n, line in enumerate(lines, 1):
        try:
            if line is None:
                raise BadLine(undecodable[n])
            example = parse(line)
        except BadLine as e:
            if not skip_bad_lines:
                raise UserError(f"{path}:{n}: {e}") from None
            skipped += 1
            continue
        if example is not None:
            examples.append(example)
    return examples, skipped


def conll_columns(line: str) -> list[str]:
    """A CoNLL line's columns, split at runs of ASCII blanks; [] for a blank line."""
    line = line.rstrip()
    return COLUMNS.split(line.lstrip(" \t")) if line else []


def is_break(columns: list[str]) -> bool:
    """A blank line or a -DOCSTART- line: either ends a sentence."""
    return not columns or columns[0] == DOCSTART


def is_tag(tag: str) -> bool:
    return tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)


def continues(tag: str, previous: str | None) -> bool:
    """Whether B-X / I-X `tag` directly follows a tag of the same entity type X."""
    return previous is not None and previous != "O" and previous[2:] == tag[2:]


def check_tag(tag: str, previous: str | None, iob1: bool = False) -> str:
    """The tag to keep: O, B-X, or an I-X that follows B-X or I-X, as it is; in an IOB1 file (see
    uses_iob1) an I-X that starts an entity becomes the B-X it means in BIO. Raise BadLine otherwise."""
    if not is_tag(tag):
        raise BadLine(f"invalid tag '{tag}' (expected O, B-TYPE or I-TYPE)")
    if tag.startswith("I-") and not continues(tag, previous):
        kind = tag[2:]
        if iob1:
            return "B-" + kind
        where = "starts a sentence" if previous is None else f"follows '{previous}'"
        raise BadLine(f"tag '{tag}' {where} (an I-{kind} must follow B-{kind} or I-{kind})")
    return tag


def uses_iob1(lines: list) -> bool:
    """Whether a CoNLL file is tagged IOB1, the scheme of CoNLL-2003's original files: an entity starts
    with I-X, and B-X only splits two touching entities of one type. True when some I-X starts an entity
    and no B-X does (a B-X after O, after another type or at a sentence start is BIO's mark).

    Why accept it at all: those files are what users download, and IOB1 -> BIO loses nothing (an I-X
    start is B-X, the rest is the same). Why decide per file: a valid BIO file has no I-X start, so it
    reads exactly as before; a BIO file with a stray I-X start (a typo, a cut entity) has B-X starts too,
    so it is still refused at that line instead of being quietly guessed at. Lines the reader refuses,
    and the rest of their sentence, are left out of the decision."""
    previous, i_starts, dropped = None, False, False
    for line in lines:
        columns = None if line is None else conll_columns(line)
        if columns is not None and is_break(columns):
            previous, dropped = None, False
            continue
        tag = columns[-1] if columns and len(columns) >= 2 else ""
        if dropped or not is_tag(tag):
            dropped = True
            continue
        if tag != "O" and not continues(tag, previous):
            if tag.startswith("B-"):
                return False
            i_starts = True
        previous = tag
    return i_starts


def read_conll(path: Path, lines: list, undecodable: dict[int, str], skip_bad_lines: bool) -> tuple[list, int]:
    """Sentences of 'token TAG' lines (first column the token, last the tag, so CoNLL-2003's
    'EU NNP B-NP B-ORG' reads as ('EU', 'B-ORG')) between blank or -DOCSTART- lines; IOB1 files are read
    as BIO (see uses_iob1). With skip_bad_lines a sentence with any bad line is dropped whole and
    counted once."""
    iob1 = uses_iob1(lines)
    sentences, skipped = [], 0
    tokens, tags, bad = [], [], False
    for n, line in enumerate(lines, 1):
        columns = None
        if line is not None:
            columns = conll_columns(line)
            if is_break(columns):  # a sentence ends (several breaks in a row are one)
                if bad:
                    skipped += 1
                elif tokens:
                    sentences.append((tokens, tags))
                tokens, tags, bad = [], [], False
                continue
            if bad:  # the rest of an already dropped sentence
                continue
        try:
            if columns is None:
                raise BadLine(undecodable[n])
            if len(columns) < 2:
                raise BadLine("expected 'token TAG', found one column")
            tag = check_tag(columns[-1], tags[-1] if tags else None, iob1)
        except BadLine as e:
            if not skip_bad_lines:
                raise UserError(f"{path}:{n}: {e}") from None
            bad = True
            continue
        tokens.append(columns[0])
        tags.append(tag)
    if bad:  # no blank line after the last sentence
        skipped += 1
    elif tokens:
        sentences.append((tokens, tags))
    return sentences, skipped


def read_examples(path: Path, fmt: str, skip_bad_lines: bool = False) -> tuple[list, int]:
    """Parse one file; returns (examples, number of bad lines/sentences skipped).
    corpus -> [line], pairs -> [(a, b)], labelled -> [(label, text)], conll -> [(tokens, tags)]."""
    if fmt not in FORMATS:
        raise UserError(f"unknown text format '{fmt}' (expected one of {', '.join(FORMATS)})")
    path = Path(path)
    lines, undecodable = decode_lines(path)
    if fmt == "conll":
        examples, skipped = read_conll(path, lines, undecodable, skip_bad_lines)
    else:
        examples, skipped = read_line_examples(path, lines, undecodable, LINE_PARSERS[fmt], skip_bad_lines)
    if not examples:
        unit = "sentences" if fmt == "conll" else "lines"
        raise UserError(f"{path}: no examples" + (f" ({skipped} bad {unit} skipped)" if skipped else ""))
    return examples, skipped


def listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def find_splits(data: str | Path, suffixes: tuple[str, ...] = (".txt", ".tsv")) -> dict[str, Path | None]:
    """{"train": Path, "validation": Path | None, "test": Path | None} (absolute). A file is the
    training data; a directory gives train.*, dev.* / valid.* / validation.* and test.*."""
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"data path {path} does not exist")
    path = path.resolve()  # trials run in their own working directories
    if path.is_file():
        return {"train": path, "validation": None, "test": None}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    found = {}
    for split, stems in SPLIT_NAMES.items():
        matches = [p for p in files if p.stem in stems]
        if len(matches) > 1:
            raise UserError(f"{path} has more than one {split} file ({', '.join(p.name for p in matches)}); keep one")
        found[split] = matches[0] if matches else None
    if found["train"] is None:
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
        holds = f"it holds {listing(held)}" if held else "it is empty"
        hint = f"; pass one file, e.g. --data {max(files, key=lambda p: p.stat().st_size)}" if files else ""
        raise UserError(f"{path} has no train.* file ({holds}){hint}")
    return found


def carve(examples: list, fraction: float, seed: int, labels: list | None = None) -> tuple[list, list]:
    """Split off a seeded `fraction` of examples (rest, carved); stratified by `labels` when given
    (every label with >= 2 examples keeps at least one on each side; a label seen once stays in rest).
    Deterministic for a seed; order within each part keeps the input order."""
    if not 0 < fraction < 1:
        raise UserError(f"validation fraction must be between 0 and 1, got {fraction}")
    if len(examples) < 2:
        raise UserError(f"cannot carve a validation split from {len(examples)} example(s); give a validation file")
    if labels is None:
        groups = [list(range(len(examples)))]
    else:
        if len(labels) != len(examples):
            raise ValueError(f"{len(labels)} labels for {len(examples)} examples")
        by_label: dict = {}
        for i, label in enumerate(labels):
            by_label.setdefault(label, []).append(i)  # first-seen order, so the draw is seed-determined
        groups = list(by_label.values())
    rng = random.Random(seed)
    carved = set()
    for idx in groups:
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))  # at least one on each side
        carved.update(rng.sample(idx, k))
    if not carved:
        raise UserError("cannot carve a stratified validation split: every label has a single example")
    return ([x for i, x in enumerate(examples) if i not in carved], [x for i, x in enumerate(examples) if i in carved])


def counts(counter: Counter) -> str:
    """'A 3, B 2, C 2' most common first (ties by name), at most MAX_LISTED named."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return listing([f"{key} {n}" for key, n in ranked])


def describe(examples: list, fmt: str) -> str:
    """One or two lines for the user before a search: dataset size and label distribution."""
    n = len(examples)
    if fmt == "labelled":
        return f"{n} examples; labels: {counts(Counter(label for label, _ in examples))}"
    if fmt == "conll":
        entities = Counter(kind for _, tags in examples for kind, _, _ in entity_spans(tags))
        tokens = sum(len(tokens) for tokens, _ in examples)
        return f"{n} sentences, {tokens} tokens; entities: {counts(entities) if entities else 'none'}"
    if fmt == "pairs":
        first = sum(len(a) for a, _ in examples) / max(n, 1)
        second = sum(len(b) for _, b in examples) / max(n, 1)
        return f"{n} pairs; mean length {first:.0f} / {second:.0f} characters"
    if fmt == "corpus":
        return f"{n} lines, {sum(len(line) for line in examples)} characters"
    raise UserError(f"unknown text format '{fmt}' (expected one of {', '.join(FORMATS)})")


def entity_spans(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, start, end-exclusive) for each entity in a BIO tag sequence (an I- without a matching
    B- starts a new entity, as conlleval does; any tag not B-/I- counts as O)."""
    spans, start, kind = set(), 0, None
    for i, tag in enumerate(tags):
        if kind is not None and tag.startswith("I-") and tag[2:] == kind:
            continue
        if kind is not None:
            spans.add((kind, start, i))
        start, kind = (i, tag[2:]) if tag.startswith(("B-", "I-")) else (i, None)
    if kind is not None:
        spans.add((kind, start, len(tags)))
    return spans


def entity_f1(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall, f1 over sentences (exact span and type match, micro-averaged),
    like seqeval/conlleval. Returns {"precision", "recall", "f1"}; 0.0 when undefined."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    hits = n_gold = n_predicted = 0
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        g, p = entity_spans(g), entity_spans(p)
        hits += len(g & p)
        n_gold += len(g)
        n_predicted += len(p)
    precision = hits / n_predicted if n_predicted else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
