"""trainables/features.py's sharing between real processes: the first computes an array under the
lock, a second waits and lends it its torch threads, then maps the file instead of computing; a dead
waiter's listing is dropped."""

import copy
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables import features, images

ARRIVAL_S = 60  # the most the first process computes while waiting for the second to lend its thread
# (a spawned interpreter importing torch took over 4 s under load: a fixed 4 s of chunks was flaky)


def compute_slowly(root: str, log: str) -> None:
    """Process one: computes under the lock, recording its torch threads at each chunk."""
    torch.set_num_threads(1)
    seen = []

    def compute():
        Path(log).with_suffix(".started").touch()
        deadline = time.monotonic() + ARRIVAL_S
        while (not seen or seen[-1] == 1) and time.monotonic() < deadline:  # chunks of 0.1 s until the loan
            features.pace()
            seen.append(torch.get_num_threads())
            time.sleep(0.1)
        return np.arange(6, dtype=np.float32)

    result = features.computed_once(Path(root), "shared", compute)
    Path(log).write_text(json.dumps({"seen": seen, "after": torch.get_num_threads(), "sum": float(result.sum())}))


def wait_and_map(root: str, log: str) -> None:
    """Process two: asks for the same array while the first computes it; must not compute it."""
    torch.set_num_threads(1)

    def compute():
        raise AssertionError("the second process computed the shared array")

    result = features.computed_once(Path(root), "shared", compute)
    Path(log).write_text(json.dumps({"sum": float(result.sum())}))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="lending a thread needs a second CPU")
def test_a_waiting_process_lends_its_threads_and_maps_the_result(tmp_path):
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as Ray's trial processes are
    first_log, second_log = tmp_path / "first.json", tmp_path / "second.json"
    first = spawn.Process(target=compute_slowly, args=(str(tmp_path), str(first_log)))
    first.start()
    deadline = time.monotonic() + 60
    while not first_log.with_suffix(".started").exists():
        assert time.monotonic() < deadline and first.is_alive(), "the first process never started computing"
        time.sleep(0.05)
    second = spawn.Process(target=wait_and_map, args=(str(tmp_path), str(second_log)))
    second.start()
    for process in (first, second):
        process.join(timeout=120)
        assert process.exitcode == 0
    one, two = json.loads(first_log.read_text()), json.loads(second_log.read_text())
    assert one["seen"][0] == 1 and one["seen"][-1] == 2  # alone at first, then with the waiter's thread
    assert one["after"] == 1  # its own again once done
    assert one["sum"] == two["sum"] == 15.0
    assert not list((tmp_path / "shared.waiting").iterdir())  # the waiter unlisted itself


def test_a_dead_waiter_lends_nothing_and_its_listing_goes(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    gone = spawn.Process(target=time.sleep, args=(0,))
    gone.start()
    gone.join()
    waiters = tmp_path / "x.waiting"
    waiters.mkdir()
    (waiters / str(gone.pid)).write_text("4")
    (waiters / str(os.getpid())).write_text("3")
    assert features.lent_threads(waiters) == 3
    assert [p.name for p in waiters.iterdir()] == [str(os.getpid())]


def test_pace_does_nothing_outside_a_shared_computation():
    before = torch.get_num_threads()
    features.pace()
    assert torch.get_num_threads() == before


def decoded_set(n: int = 10, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(0)
    return generator.integers(0, 255, (n, 3, size, size), dtype=np.uint8), np.arange(n) % 2


def test_a_search_s_splits_and_search_train_share_one_computation_per_view(tmp_path):
    """Train and validation rows of one decoded set, then all of it (what `search train` trains on):
    one feature file per view, and each split reads exactly its own rows' features."""
    array, labels = decoded_set()
    torch.manual_seed(0)
    prefix = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2)).eval()
    centre = lambda x: x.float() / 255  # noqa: E731
    train = images.rows_of(array, labels, [7, 0, 3, 5, 1, 8], "set")
    validation = images.rows_of(array, labels, [2, 4, 6, 9], "set")
    every = images.whole_split(array, labels, "set")
    features._features.clear()
    splits = (train, validation, every)
    got = [features.cached_embed(prefix, s, centre, "centre", 8, "cpu", str(tmp_path)) for s in splits]
    assert len(list(tmp_path.glob("*.npy"))) == 1
    for split, shared in zip(splits, got):
        assert len(shared) == len(split)
        alone = features.embed(prefix, split, centre, "cpu")
        assert torch.allclose(shared[torch.arange(len(split))], alone, atol=1e-6)
        assert torch.allclose(shared[1:3], alone[1:3], atol=1e-6)  # slices index the split's positions too


def test_feature_batches_take_each_example_s_drawn_view():
    views = [torch.arange(10.0).view(10, 1), -torch.arange(10.0).view(10, 1)]
    labels = torch.arange(10)
    batches = list(images.feature_batches(views, labels, 4, torch.Generator().manual_seed(3)))
    generator = torch.Generator().manual_seed(3)  # the draws feature_batches makes, in its order
    order, choice = torch.randperm(10, generator=generator), torch.randint(2, (10,), generator=generator)
    expected = torch.stack(views)[choice[order], order]
    assert torch.equal(torch.cat([x for x, _ in batches]), expected)
    assert torch.equal(torch.cat([y for _, y in batches]), order)


class ToDouble(torch.nn.Module):
    def forward(self, x):
        return x.double()


def test_a_float64_copy_of_a_prefix_gets_its_own_features(tmp_path):
    """The key holds the weights' dtype: the same values in float64 sum alike, and were once served
    the float32 prefix's features in the same process."""
    array, labels = decoded_set()
    torch.manual_seed(0)
    prefix = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2)).eval()
    double = torch.nn.Sequential(ToDouble(), copy.deepcopy(prefix).double())  # the same values, in float64
    every = images.whole_split(array, labels, "set")
    centre = lambda x: x.float() / 255  # noqa: E731
    features._features.clear()
    got = [features.cached_embed(p, every, centre, "centre", 8, "cpu", str(tmp_path)) for p in (prefix, double)]
    assert [g[0:2].dtype for g in got] == [torch.float32, torch.float64]
    assert len(list(tmp_path.glob("*.npy"))) == 2


def write_aged(folder: Path, names: list[str], size: int) -> None:
    """Feature files of `size` bytes, the first the least recently used."""
    folder.mkdir(parents=True, exist_ok=True)
    for age, name in enumerate(reversed(names)):
        path = folder / f"{name}.npy"
        path.write_bytes(b"\0" * size)
        os.utime(path, (time.time() - 60 * (age + 1),) * 2)


def test_prune_drops_the_least_recently_used_past_the_limit(tmp_path):
    mb = 2**20
    write_aged(tmp_path, ["old", "mid", "new"], 4 * mb)
    features.prune(tmp_path, limit=9 * mb, keep_free=0)
    assert sorted(p.stem for p in tmp_path.glob("*.npy")) == ["mid", "new"]


def test_prune_gives_way_when_the_disk_runs_low(tmp_path):
    """Under the byte limit, but the disk would keep less than `keep_free`: files go, oldest first,
    until it would not (6 MB short: two 4-MB files), and never the newest."""
    mb = 2**20
    write_aged(tmp_path, ["old", "mid", "new"], 4 * mb)
    free = shutil.disk_usage(tmp_path).free
    features.prune(tmp_path, limit=2**40, keep_free=free + 6 * mb)
    assert [p.stem for p in tmp_path.glob("*.npy")] == ["new"]
    os.utime(tmp_path / "new.npy")  # used again: now the newest
    write_aged(tmp_path, ["older"], mb)
    features.prune(tmp_path, limit=2**40, keep_free=shutil.disk_usage(tmp_path).free + 100 * mb)
    assert (tmp_path / "new.npy").is_file()  # the newest stays, whatever the disk
