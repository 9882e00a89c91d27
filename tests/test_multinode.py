"""A real multi-node Ray on this machine (ray.cluster_utils.Cluster: a head and an added node):
`search --address` spreads trials over both nodes, and a node removed mid-search costs no trial
(its trials are retried from their last checkpoint on the node that is left)."""

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from search.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def node_ids(output: Path) -> dict[str, set]:
    return {d.name: {json.loads(line)["node_id"] for line in (d / "result.json").read_text().splitlines()}
            for d in (output / "trials").iterdir() if (d / "result.json").is_file()}


def search(cluster, data, output, *extra):
    return main(["hotdog", "--data", str(data), "--output", str(output), "--image-size", "32",
                 "--address", cluster.address, *extra])


def test_trials_run_on_both_nodes(two_nodes, tiny_images, tmp_path):
    cluster, _ = two_nodes
    assert search(cluster, tiny_images, tmp_path, "--trials", "4", "--max-epochs", "2", "--max-concurrent", "2") == 0
    placed = node_ids(tmp_path)
    assert len(placed) == 4
    assert len(set().union(*placed.values())) == 2, placed  # trials ran on the head and on the added node


def test_removing_a_node_mid_search_loses_no_trial(two_nodes, tiny_images, tmp_path, capsys):
    cluster, worker = two_nodes

    def remove_when_busy():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until some trial has reported from the worker node
            if any(worker.node_id in ids for ids in node_ids(tmp_path).values()) if (tmp_path / "trials").is_dir() else False:
                cluster.remove_node(worker)
                return
            time.sleep(0.1)

    remover = threading.Thread(target=remove_when_busy, daemon=True)
    remover.start()
    # 8 epochs that ASHA may not cut short: the worker's trial is still running when its node goes
    code = search(cluster, tiny_images, tmp_path, "--trials", "4", "--max-epochs", "8", "--grace-period", "8",
                  "--max-concurrent", "2", "--max-failures", "3", "--patience", "0")
    remover.join()
    assert code == 0
    table = pd.read_csv(tmp_path / "results.csv", dtype={"trial_id": str})
    assert len(table) == 4 and not (table["status"] == "errored").any(), table[["trial_id", "status", "error"]]
    assert worker.node_id in set().union(*node_ids(tmp_path).values())  # the removed node did run trials
    assert "retrying from its last checkpoint" in capsys.readouterr().out  # and one of them moved over
    assert (table["epochs"] == 8).all()
