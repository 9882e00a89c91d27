"""search/resources.py: a trial's request against Ray's nodes, refused in one line saying what was
asked and what the machine (or the cluster's largest node) has; waited for when the cluster can grow."""

import pytest

from search.options import SearchOptions
from search.resources import GB, check_resources, trial_request
from trainables.basics import UserError

LAPTOP = [{"CPU": 2.0, "memory": 4.0 * GB, "object_store_memory": 1.0 * GB}]
CLUSTER = [{"CPU": 4.0, "GPU": 1.0, "memory": 16.0 * GB}, {"CPU": 16.0, "memory": 64.0 * GB}]


def options(**changes) -> SearchOptions:
    return SearchOptions(task="hotdog", output="out", **changes)


@pytest.mark.parametrize(
    "changes, nodes",
    [
        ({}, LAPTOP),
        ({"cpus_per_trial": 2.0}, LAPTOP),
        ({"cpus_per_trial": 0.5, "memory_per_trial": 3.0}, LAPTOP),
        ({"cpus_per_trial": 4.0, "gpus_per_trial": 1.0}, CLUSTER),  # the first node has both
        ({"cpus_per_trial": 16.0}, CLUSTER),  # the second
    ],
)
def test_a_request_some_node_meets_passes(changes, nodes):
    assert check_resources(options(**changes), nodes, can_grow=False) is None


@pytest.mark.parametrize(
    "changes, nodes, message",
    [
        ({"cpus_per_trial": 3.0}, LAPTOP, "a trial asks for 3 CPUs (--cpus-per-trial), but this machine has 2 CPUs"),
        (
            {"gpus_per_trial": 1.0},
            LAPTOP,
            "1 CPU (--cpus-per-trial), 1 GPU (--gpus-per-trial), but this machine has 2 CPUs, 0 GPUs",
        ),
        (
            {"memory_per_trial": 8.0},
            LAPTOP,
            "8 GB of memory (--memory-per-trial), but this machine has 2 CPUs, 4 GB of memory",
        ),
        # no node has 8 CPUs and a GPU together, though the cluster has both
        (
            {"cpus_per_trial": 8.0, "gpus_per_trial": 1.0, "address": "head:6379"},
            CLUSTER,
            "but the largest node of the cluster at head:6379 has 4 CPUs, 1 GPU",
        ),
    ],
)
def test_a_request_no_node_meets_is_refused_in_one_line(changes, nodes, message):
    with pytest.raises(UserError) as refused:
        check_resources(options(**changes), nodes, can_grow=False)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_cluster_that_can_grow_waits_and_says_so():
    request = options(cpus_per_trial=32.0, address="head:6379", pending_timeout=120.0)
    note = check_resources(request, CLUSTER, can_grow=True)
    assert "autoscaler" in note and "--pending-timeout 120 s" in note and "32 CPUs" in note
    with pytest.raises(UserError):  # a private Ray is this machine: it never grows
        check_resources(options(cpus_per_trial=32.0), CLUSTER, can_grow=True)


def test_the_request_is_in_rays_units():
    assert trial_request(options(cpus_per_trial=0.5, memory_per_trial=2.0)) == {"CPU": 0.5, "memory": 2.0 * GB}
