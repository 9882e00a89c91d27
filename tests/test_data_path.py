"""The image data path end to end (real Ray): images are decoded once per data set, so a second
search on the same files decodes nothing, and a set over --memory-budget, mapped from its decoded
file instead of the object store, gives the same search."""

import pandas as pd
import pytest

from search.cli import main
from tests.conftest import make_image_folder


def search(data, output, *extra):
    return main(
        [
            "image",
            "--data",
            str(data),
            "--output",
            str(output),
            "--trials",
            "3",
            "--max-epochs",
            "2",
            "--image-size",
            "32",
            "--max-concurrent",
            "1",
            "--no-report",
            "--seed",
            "3",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def fresh_images(tmp_path_factory):
    """A data set no other test decodes (the test session shares one cache)."""
    return make_image_folder(tmp_path_factory.mktemp("fresh"), {"train": 9, "test": 3}, size=20, seed=11)


def test_a_second_search_decodes_nothing_and_streaming_gives_the_same_results(
    fresh_images, tmp_path, capsys, shared_ray
):
    assert search(fresh_images, tmp_path / "memory") == 0
    out = capsys.readouterr().out
    assert "decoded train/: 18 images" in out and "in Ray's object store" in out
    assert search(fresh_images, tmp_path / "streamed", "--memory-budget", "1K") == 0
    out = capsys.readouterr().out
    assert "decoded train/" not in out and "mapped from the decoded file" in out  # the cache's file, not decoded again
    a, b = (pd.read_csv(tmp_path / name / "results.csv", dtype={"trial_id": str}) for name in ("memory", "streamed"))
    columns = [c for c in a.columns if c not in ("trial_id", "seconds")]
    pd.testing.assert_frame_equal(a[columns], b[columns])
