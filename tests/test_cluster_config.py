"""cluster.yaml and cluster.local.yaml pass Ray's own config preparation and schema validation
(offline: no cloud calls), the same checks `ray up` runs first."""

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster.local.yaml"])
def test_cluster_config_is_valid_for_ray_up(name):
    config = prepare_config(yaml.safe_load((REPO / name).read_text()))
    validate_config(config)
    assert config["file_mounts"]["~/search"] == "."  # the project travels to every node
    assert any("pip install" in command for command in config["setup_commands"])


def test_aws_cluster_has_gpu_workers_that_scale_to_zero():
    config = prepare_config(yaml.safe_load((REPO / "cluster.yaml").read_text()))
    worker = config["available_node_types"]["gpu_worker"]
    assert worker["min_workers"] == 0 and worker["max_workers"] >= 1
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
