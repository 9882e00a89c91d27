"""trainables/checkpoints.py: a trial's state is saved and read back with weights_only loading,
so a checkpoint can hold tensors and plain values but no code."""

import pickle

import pytest
import torch

from trainables.checkpoints import STATE_FILE, load_state


def test_a_saved_state_reads_back(tmp_path):
    state = {"epoch": 2, "best_loss": 0.3, "stale": 0, "stop": "", "model": {"w": torch.arange(3.0)}}
    torch.save(state, tmp_path / STATE_FILE)
    back = load_state(tmp_path)
    assert back["epoch"] == 2 and torch.equal(back["model"]["w"], torch.arange(3.0))


class Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    with open(tmp_path / STATE_FILE, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError):
        load_state(tmp_path)
    assert "code ran" not in capsys.readouterr().out


def test_a_missing_checkpoint_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        load_state(tmp_path / "nothing")
