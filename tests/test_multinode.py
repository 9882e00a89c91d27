"""A real multi-node Ray on this machine (ray.cluster_utils.Cluster: a head and an added node):
`search --address` spreads trials over both nodes, a node removed mid-search costs no trial
(its trials are retried from their last checkpoint on the node that is left), and --storage-path
is checked from every node: a shared folder passes, one only the driver sees is refused."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from search.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def node_ids(output: Path) -> dict[str, set]:
    return {
        d.name: {json.loads(line)["node_id"] for line in (d / "result.json").read_text().splitlines()}
        for d in (output / "trials").iterdir()
        if (d / "result.json").is_file()
    }


def search(cluster, data, output, *extra):
    return main(
        [
            "hotdog",
            "--data",
            str(data),
            "--output",
            str(output),
            "--image-size",
            "32",
            "--address",
            cluster.address,
            *extra,
        ]
    )


def test_trials_run_on_both_nodes_and_a_shared_storage_path_passes_the_check(two_nodes, tiny_images, tmp_path):
    cluster, _ = two_nodes
    store = tmp_path / "store"  # one machine: every node sees it, as an NFS mount would be seen
    args = ["--storage-path", str(store), "--trials", "4", "--max-epochs", "2", "--max-concurrent", "2", "--no-report"]
    assert search(cluster, tiny_images, tmp_path / "out", *args) == 0
    placed = node_ids(store)
    assert len(placed) == 4 and not (tmp_path / "out" / "trials").exists()
    assert len(set().union(*placed.values())) == 2, placed  # trials ran on the head and on the added node
    assert not list(store.glob(".search-visible-*"))  # the check cleans up its marker


def test_removing_a_node_mid_search_loses_no_trial(two_nodes, tiny_images, tmp_path, capsys):
    cluster, worker = two_nodes

    def remove_when_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until some trial has reported from the worker node
            if (
                any(worker.node_id in ids for ids in node_ids(tmp_path).values())
                if (tmp_path / "trials").is_dir()
                else False
            ):
                cluster.remove_node(worker)
                return
            time.sleep(0.1)

    remover = threading.Thread(target=remove_when_busy, daemon=True)
    remover.start()
    # 8 epochs that ASHA may not cut short: the worker's trial is still running when its node goes
    code = search(
        cluster,
        tiny_images,
        tmp_path,
        "--trials",
        "4",
        "--max-epochs",
        "8",
        "--grace-period",
        "8",
        "--max-concurrent",
        "2",
        "--max-failures",
        "3",
        "--patience",
        "0",
    )
    remover.join()
    assert code == 0
    table = pd.read_csv(tmp_path / "results.csv", dtype={"trial_id": str})
    assert len(table) == 4 and not (table["status"] == "errored").any(), table[["trial_id", "status", "error"]]
    assert worker.node_id in set().union(*node_ids(tmp_path).values())  # the removed node did run trials
    assert "retrying from its last checkpoint" in capsys.readouterr().out  # and one of them moved over
    assert (table["epochs"] == 8).all()


def can_unshare_mounts() -> bool:
    return (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs `unshare --mount` (root, or a user namespace)")
def test_a_storage_path_only_the_driver_sees_is_refused(two_nodes, tiny_images, tmp_path):
    cluster, _ = two_nodes
    private = tmp_path / "private"
    private.mkdir()
    # The driver runs in its own mount namespace with a tmpfs over `private`: what it writes there the
    # nodes (started outside it) never see, like a disk local to one machine of a real cluster.
    search_command = [
        sys.executable,
        "-m",
        "search",
        "hotdog",
        "--data",
        str(tiny_images),
        "--output",
        str(tmp_path / "out"),
        "--image-size",
        "32",
        "--address",
        cluster.address,
        "--storage-path",
        str(private / "store"),
        "--trials",
        "1",
        "--max-epochs",
        "1",
    ]
    driver = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'mount -t tmpfs tmpfs "{private}" && exec "$@"',
            "sh",
            *search_command,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert driver.returncode == 2, driver.stderr[-2000:]
    assert driver.stderr.count("\n") == 1, driver.stderr
    assert f"--storage-path {private / 'store'} is not visible from node" in driver.stderr
    assert "give a shared directory or a cloud URI such as s3://bucket/path" in driver.stderr
    assert not (tmp_path / "out").exists() and not os.listdir(private)  # nothing written, nothing left
