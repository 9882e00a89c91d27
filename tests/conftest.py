"""Shared fixtures: a tiny generated ImageFolder (two colour-coded classes) and the real data path."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# decoded images and frozen features go to a cache of this test session, not the user's (Ray's
# workers, started from this process, inherit it), removed when the session ends: a full run leaves
# ~360 MB there, and 72 runs left behind once filled the disk CI installs on
if "SEARCH_CACHE_DIR" not in os.environ:
    os.environ["SEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="search-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SEARCH_CACHE_DIR"], ignore_errors=True)

SHARED_HOTDOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "hotdog"


def make_image_folder(root: Path, per_class: dict[str, int], size: int = 24, seed: int = 0) -> Path:
    """Write `per_class[split]` noisy JPEGs per class: reddish 'cats', bluish 'dogs', so a model can learn them."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for name, channel in (("cat", 0), ("dog", 2)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 120, size=(size, size, 3), dtype=np.uint8)
                pixels[..., channel] += 120
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("tiny"), {"train": 10, "test": 4})


@pytest.fixture(scope="session")
def tiny_search(tiny_images, tmp_path_factory) -> Path:
    """A finished 4-trial, 2-epoch hotdog search of tiny_images, with its report: tests/test_cli.py
    and tests/test_report.py read (or copy) this one instead of running one each."""
    from search.cli import main

    output = tmp_path_factory.mktemp("search") / "run"
    flags = ["--trials", "4", "--max-epochs", "2", "--image-size", "32", "--max-concurrent", "1"]
    assert main(["hotdog", "--data", str(tiny_images), "--output", str(output), *flags]) == 0
    return output


@pytest.fixture(scope="module")
def shared_ray():
    """One private Ray (2 CPUs, no GPU) for a module's in-process searches, started as search/session.py
    starts its own (quiet): a search joins it and leaves it up, which saves each one Ray's start and
    stop (~10 s on the 2-core test machine). Modules that test Ray's own start (signals, --address,
    refusals before Ray) run without it."""
    import ray

    ray.init(
        address="local", num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    yield
    ray.shutdown()


# --- tiny text data: template sentences a model separates easily, in each task's file format ---

SPORTS = ["team", "match", "goal", "coach", "player", "season", "league", "stadium"]
FINANCE = ["stocks", "market", "bank", "shares", "profit", "investors", "prices", "economy"]
PEOPLE = ["alice", "bob", "carol", "david", "emma", "frank"]
SURNAMES = ["smith", "jones", "brown"]
PLACES = ["paris", "london", "berlin", "tokyo", "rome", "madrid"]
FOODS = ["apples", "bread", "cheese", "rice", "soup", "tea"]
CHINESE_UNK = "华泽普通共"  # characters MiniLM's English vocabulary maps to [UNK]
CHINESE_KNOWN = "中人民的"  # characters it has


def text_lines(kind: str, n: int, seed: int = 0) -> list[str]:
    """`n` examples of `kind` (classify, ner, qa, title, lm, lm-zh, ner-zh) as the lines of its file;
    a ner example is a sentence of `token TAG` lines followed by a blank line."""
    rng = np.random.default_rng(seed)
    pick = lambda words, k=1: [str(w) for w in rng.choice(words, k)]  # noqa: E731
    lines = []
    for i in range(n):
        if kind == "classify":
            label, words = ("sports", SPORTS) if i % 2 == 0 else ("finance", FINANCE)
            lines.append(f"{label}\tthe {' and the '.join(pick(words, 3))} {pick(words)[0]}")
        elif kind == "ner":
            person, place = pick(PEOPLE)[0], pick(PLACES)[0]
            if i % 3 == 0:
                tokens = [
                    ("yesterday", "O"),
                    (person, "B-PER"),
                    (pick(SURNAMES)[0], "I-PER"),
                    ("visited", "O"),
                    (place, "B-LOC"),
                ]
            else:
                tokens = [(person, "B-PER"), ("lives", "O"), ("in", "O"), (place, "B-LOC"), ("now", "O")]
            lines.extend([f"{token} {tag}" for token, tag in tokens] + [""])
        elif kind == "ner-zh":
            name, place = pick(list(CHINESE_UNK), 2), pick(list(CHINESE_KNOWN), 2)
            tokens = [(name[0], "B-PER"), (name[1], "I-PER"), ("的", "O"), (place[0], "B-LOC"), (place[1], "I-LOC")]
            lines.extend([f"{token} {tag}" for token, tag in tokens] + [""])
        elif kind == "qa":
            person = PEOPLE[i % len(PEOPLE)]
            if (i // len(PEOPLE)) % 2 == 0:
                place = PLACES[(i // len(PEOPLE) + i) % len(PLACES)]
                lines.append(f"where does {person} live ({i})\t{person} lives in {place}, number {i}")
            else:
                food = FOODS[(i // len(PEOPLE) + i) % len(FOODS)]
                lines.append(f"what does {person} eat ({i})\t{person} eats {food}, number {i}")
        elif kind == "title":
            words = SPORTS if i % 2 == 0 else FINANCE
            topic, place = pick(words)[0], pick(PLACES)[0]
            lines.append(
                f"{topic} news from {place}\tthe {topic} in {place} was in the news on sunday, "
                f"with {' and '.join(pick(words, 2))}"
            )
        elif kind == "lm":
            words = SPORTS if i % 2 == 0 else FINANCE
            lines.append(f"the {' of the '.join(pick(words, 4))} in {pick(PLACES)[0]}")
        elif kind == "lm-zh":
            lines.append("".join(pick(list(CHINESE_UNK + CHINESE_KNOWN), 12)))
        else:
            raise ValueError(kind)
    return lines


def write_text_data(path: Path, kind: str, n: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text_lines(kind, n, seed)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> dict[str, Path]:
    """One small file per text task (and Chinese lm/ner files for the vocabulary tests)."""
    root = tmp_path_factory.mktemp("text")
    sizes = {"classify": 80, "ner": 60, "qa": 60, "title": 60, "lm": 60, "lm-zh": 60, "ner-zh": 60}
    return {kind: write_text_data(root / f"{kind}.txt", kind, n) for kind, n in sizes.items()}
