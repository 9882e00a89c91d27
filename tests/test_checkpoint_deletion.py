"""search/checkpoint_deletion.py on a real Tune run: at the moment a trial registers a new checkpoint
(when Ray supersedes the one before), the experiment state on storage still names a checkpoint that
exists, so a search killed at that instant resumes; and once the run ends only the kept checkpoint is
left."""

import json
import tempfile
import time
from pathlib import Path

from ray import tune
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune.trainable.metadata import _TrainingRunMetadata

import search.checkpoint_deletion  # noqa: F401  (patches Ray on import, as search/tuner.py does)

EPOCHS = 4


def improving(config):
    """Reports EPOCHS epochs, each better than the last and with a checkpoint: each supersedes the one
    before, which Ray then deletes (num_to_keep=1)."""
    for epoch in range(1, EPOCHS + 1):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
            tune.report({"epoch": epoch, "score": float(epoch)}, checkpoint=tune.Checkpoint.from_directory(folder))


def named_by_saved_state(experiment: Path) -> list[tuple[str, bool]]:
    """(path, exists) of the checkpoint each trial would resume from by the newest experiment state on
    storage: what a search killed at this instant resumes from."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return []
    for _ in range(50):  # an upload may be writing it: read it whole
        try:
            state = json.loads(states[-1].read_text())
            break
        except json.JSONDecodeError:
            time.sleep(0.02)
    named = []
    for _, run_metadata in state["trial_data"]:
        latest = _TrainingRunMetadata.from_json_state(run_metadata).checkpoint_manager.latest_checkpoint_result
        if latest is not None:
            named.append((latest.checkpoint.path, Path(latest.checkpoint.path).is_dir()))
    return named


def test_the_saved_state_never_names_a_deleted_checkpoint(tmp_path, monkeypatch, shared_ray):
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # a state saved every step: the tightest race
    named = []

    def register_then_look(manager, result):  # the instant Ray supersedes (and deletes) a checkpoint
        register_checkpoint(manager, result)
        named.extend(named_by_saved_state(tmp_path / "exp"))

    register_checkpoint = _CheckpointManager.register_checkpoint
    monkeypatch.setattr(_CheckpointManager, "register_checkpoint", register_then_look)
    tuner = tune.Tuner(
        improving,
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=2, max_concurrent_trials=1),
        run_config=tune.RunConfig(
            name="exp",
            storage_path=str(tmp_path),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="score", checkpoint_score_order="max"
            ),
        ),
    )
    grid = tuner.fit()

    assert not grid.errors
    assert len(named) >= EPOCHS  # the saved state named checkpoints while trials ran
    missing = [path for path, exists in named if not exists]
    assert not missing, f"the saved state named deleted checkpoints: {missing}"
    for result in grid:  # what was superseded is deleted in the end
        assert [p.name for p in Path(result.path).glob("checkpoint_*")] == [f"checkpoint_{EPOCHS - 1:06d}"]
