"""Tests for search.report.cost: each scored trial's median seconds per epoch, grouped by backbone
when the space searched it, and the figure drawn from them."""

import pandas as pd

from search.report.cost import plot_cost, trial_costs
from search.report.load import Search


def search_with(table: pd.DataFrame, histories: dict, best: dict | None = None) -> Search:
    return Search(
        output=None, table=table, metric="val_accuracy", mode="max", best=best or {}, options={}, space={},
        histories=histories,
    )  # fmt: skip


def test_costs_are_per_trial_medians_grouped_by_backbone(tmp_path):
    table = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c"],
            "status": ["completed", "stopped early", "errored"],
            "backbone": ["mobilenet_v2", "efficientnet_lite0", "mobilenet_v2"],
            "val_accuracy": [0.8, 0.9, float("nan")],  # c has no score: left out
        }
    )
    histories = {
        "a": pd.DataFrame({"epoch": [1, 2, 3], "epoch_seconds": [9.0, 2.0, 3.0]}),
        "b": pd.DataFrame({"epoch": [1, 2], "epoch_seconds": [5.0, 7.0]}),
        "c": pd.DataFrame({"epoch": [1], "epoch_seconds": [1.0]}),
    }
    costs = trial_costs(search_with(table, histories)).set_index("trial_id")
    assert costs.loc["a", "seconds"] == 3.0 and costs.loc["b", "seconds"] == 6.0
    assert dict(costs["group"]) == {"a": "mobilenet_v2", "b": "efficientnet_lite0"}
    path = plot_cost(search_with(table, histories), tmp_path / "cost.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_searched_backbone_the_trials_share_best_yaml_backbone():
    table = pd.DataFrame({"trial_id": ["a"], "status": ["completed"], "val_accuracy": [0.7]})
    histories = {"a": pd.DataFrame({"epoch": [1], "epoch_seconds": [4.0]})}
    costs = trial_costs(search_with(table, histories, {"backbone": "resnet18"}))
    assert list(costs["group"]) == ["resnet18"]
    assert plot_cost(search_with(table, {}), None) is None  # no epoch times: no figure
