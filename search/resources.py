"""What one trial asks Ray for, checked against what Ray has before any trial starts: a request no
node can ever meet would leave every trial PENDING forever. A private Ray is this machine, so a
request it cannot meet is refused; a cluster is judged by its largest alive node, unless it can add
nodes (an autoscaler), when the search waits, for at most --pending-timeout (see search/watch.py).
"""

import ray

from search.options import SearchOptions
from trainables.basics import UserError

GB = 1024**3
FLAGS = {"CPU": "--cpus-per-trial", "GPU": "--gpus-per-trial", "memory": "--memory-per-trial"}


def trial_request(options: SearchOptions) -> dict[str, float]:
    """Ray's resource names -> what one trial takes (memory in bytes, as Ray counts it)."""
    request = {"CPU": options.cpus_per_trial, "GPU": options.gpus_per_trial}
    if options.memory_per_trial:
        request["memory"] = options.memory_per_trial * GB
    return {name: amount for name, amount in request.items() if amount}


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / GB:.2f}".rstrip("0").rstrip(".") + " GB of memory"
    return f"{value:g} {name}{'s' if value != 1 else ''}"


def alive_nodes() -> list[dict]:
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def cluster_can_grow(options: SearchOptions) -> bool:
    """Whether the cluster's autoscaler could add a node that meets one trial's request: Ray's
    autoscaler (v2) publishes its node types in the cluster's store. A cluster without that record
    (no autoscaler, or v1's) is taken as fixed; a private Ray never grows."""
    from ray._private import state

    request = trial_request(options)
    try:
        config = state.state.get_cluster_config()
    except Exception:  # an older cluster, or a Ray Client connection
        return False
    groups = config.node_group_configs if config is not None else []
    return any(
        group.max_count != 0 and all(group.resources.get(name, 0) >= amount for name, amount in request.items())
        for group in groups
    )


def check_resources(options: SearchOptions, nodes: list[dict], can_grow: bool) -> str | None:
    """Refuse a per-trial request that fits no node in `nodes` (Ray's per-node resource dicts);
    return a note to print when it fits none now but the cluster may grow."""
    request = trial_request(options)
    if any(all(node.get(name, 0) >= amount for name, amount in request.items()) for node in nodes):
        return None
    asked = ", ".join(f"{_amount(name, amount)} ({FLAGS[name]})" for name, amount in request.items())
    # the node nearest to fitting (for one resource, the largest): how much of each ask it has, capped at 1
    largest = max(nodes, key=lambda node: sum(min(node.get(n, 0) / a, 1) for n, a in request.items()), default={})
    has = ", ".join(_amount(name, largest.get(name, 0)) for name in request)
    where = "this machine has" if not options.address else f"the largest node of the cluster at {options.address} has"
    if options.address and can_grow:
        return (
            f"note: a trial asks for {asked}, more than any node of the cluster at {options.address} has now "
            f"(the largest: {has}); it has an autoscaler, so the search waits for a node, at most --pending-timeout "
            f"{options.pending_timeout:g} s"
        )
    raise UserError(f"a trial asks for {asked}, but {where} {has}; ask for less per trial")
