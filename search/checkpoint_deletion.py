"""A trial's superseded checkpoint is deleted only once an experiment state that no longer names it is
on storage. Ray (2.60, pinned) deletes it as soon as the next checkpoint is registered, but writes the
experiment state, which names the checkpoint each trial resumes from, a step later and uploads it in
the background: a search killed in between (SIGKILL, power loss) resumed to a missing checkpoint and
the trial failed ("does not exist on storage anymore") until it was errored (seen in 1 of 3 runs of
tests/test_tuner.py's kill-and-resume test). Patched on Ray's classes when this module is imported.
"""

from ray.train._internal import checkpoint_manager
from ray.tune.execution.tune_controller import TuneController

_ray_delete = checkpoint_manager._delete_fs_path
_ray_checkpoint = TuneController.checkpoint

waiting: list[tuple] = []  # (filesystem, path) Ray asked to delete, oldest first


def _delete_later(fs, fs_path: str) -> None:
    waiting.append((fs, fs_path))


def _checkpoint_then_delete(controller, force: bool = False, wait: bool = False) -> None:
    """Tune's experiment checkpoint; with deletions waiting, it waits for the state's upload and then
    deletes what was superseded before it (the upload copies a few kB of JSON: no measurable cost)."""
    requested = len(waiting)
    if not requested:
        return _ray_checkpoint(controller, force=force, wait=wait)
    manager = controller._checkpoint_manager
    manager._storage.syncer.wait()  # an earlier upload still running would skip ours
    saved_before = manager._last_save_time  # Ray sets it after each save it makes, and only then
    _ray_checkpoint(controller, force=force, wait=True)
    if manager._last_save_time == saved_before:  # not due yet (TUNE_GLOBAL_CHECKPOINT_S): nothing deleted
        return
    for fs, path in waiting[:requested]:
        _ray_delete(fs=fs, fs_path=path)
    del waiting[:requested]


checkpoint_manager._delete_fs_path = _delete_later
# on the class, not the instance: Tune pickles the controller's __dict__ into the experiment state
TuneController.checkpoint = _checkpoint_then_delete
