"""Shared fixtures: a tiny generated ImageFolder (two colour-coded classes) and the real data path."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

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
