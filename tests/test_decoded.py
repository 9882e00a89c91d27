"""trainables/decoded.py: an ImageFolder split decoded once into a cached array, in parallel as Ray
tasks when Ray is up, the same rows whichever way; a second decode of the same files maps the cache."""

import os

import numpy as np
import pytest
import ray
import torch

from tests.conftest import make_image_folder
from trainables import decode, decoded, images
from trainables.basics import UserError


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "data", {"train": 40}, size=20)


def serial(root, size):
    """What the first round did: decode every file, one by one, in order."""
    return images.load_image_folder(root, size)


def test_decoding_is_cached_and_a_second_decode_decodes_nothing(folder, tmp_path, monkeypatch):
    first = decoded.decode_split(folder / "train", 16, cache_root=tmp_path / "cache", quiet=True)
    reference = serial(folder / "train", 16)
    assert np.array_equal(first.images, reference.images.numpy()) and first.labels.tolist() == reference.labels.tolist()
    assert first.paths == reference.paths and isinstance(first.images, np.memmap)
    monkeypatch.setattr(decode, "decode_array", lambda *a: pytest.fail("decoded again"))
    again = decoded.decode_split(folder / "train", 16, cache_root=tmp_path / "cache", quiet=True)
    assert again.key == first.key and np.array_equal(again.images, first.images)


def test_a_changed_file_or_size_is_decoded_anew(folder, tmp_path):
    first = decoded.decode_split(folder / "train", 16, cache_root=tmp_path, quiet=True)
    assert decoded.decode_split(folder / "train", 18, cache_root=tmp_path, quiet=True).key != first.key
    path = folder / "train" / "cat" / "0.jpg"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert decoded.decode_split(folder / "train", 16, cache_root=tmp_path, quiet=True).key != first.key


def test_ray_tasks_decode_the_same_rows(folder, tmp_path, capsys):
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        parallel = decoded.decode_split(folder / "train", 16, cache_root=tmp_path / "a", workers=2)
    finally:
        ray.shutdown()
    reference = serial(folder / "train", 16)
    assert np.array_equal(parallel.images, reference.images.numpy())
    out = capsys.readouterr().out
    assert "decoded train/: 80 images" in out and "2 worker(s)" in out


def test_ray_tasks_write_their_rows_and_report_a_bad_file(folder, tmp_path):
    """On one node the tasks write into the cached file themselves and send back only their errors:
    a skipped file leaves the same rows as the serial decode, a refused one nothing cached."""
    bad = folder / "train" / "cat" / "3.jpg"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        with pytest.raises(UserError, match=f"unreadable image {bad}"):
            decoded.decode_split(folder / "train", 16, cache_root=tmp_path / "a", workers=2, quiet=True)
        assert list((tmp_path / "a").iterdir()) == []
        kept = decoded.decode_split(
            folder / "train", 16, skip_bad=True, cache_root=tmp_path / "a", workers=2, quiet=True
        )
    finally:
        ray.shutdown()
    reference = images.load_image_folder(folder / "train", 16, skip_bad=True)
    assert kept.skipped == [str(bad)] and np.array_equal(kept.images, reference.images.numpy())


def test_a_bad_file_stops_the_decode_or_is_skipped(folder, tmp_path):
    bad = folder / "train" / "dog" / "7.jpg"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=f"unreadable image {bad}"):
        decoded.decode_split(folder / "train", 16, cache_root=cache, quiet=True)
    assert list(cache.iterdir()) == []  # nothing half-cached
    kept = decoded.decode_split(folder / "train", 16, skip_bad=True, cache_root=cache, quiet=True)
    assert kept.skipped == [str(bad)] and len(kept.images) == 79 and str(bad) not in kept.paths
    reference = images.load_image_folder(folder / "train", 16, skip_bad=True)
    assert np.array_equal(kept.images, reference.images.numpy()) and kept.labels.tolist() == reference.labels.tolist()
    assert torch.equal(torch.from_numpy(kept.labels), reference.labels)


def test_a_class_with_no_readable_image_is_refused_even_when_skipping(folder, tmp_path):
    for path in (folder / "train" / "cat").iterdir():
        path.write_bytes(b"not an image")
    with pytest.raises(UserError, match="class folder .*cat has no readable images"):
        decoded.decode_split(folder / "train", 16, skip_bad=True, cache_root=tmp_path / "cache", quiet=True)
