"""trainables/settings.py: the one function that builds every trial's typed settings."""

import dataclasses

import pytest

from trainables.settings import TrialSettings, trial_settings


def test_threads_and_device_follow_the_resources():
    settings = trial_settings(
        "model", epochs=4, schedule_epochs=8, seed=1, patience=3, min_delta=1e-3, cpus=2.5, gpus=0.25, amp="bf16"
    )
    assert settings == TrialSettings(
        epochs=4,
        schedule_epochs=8,
        patience=3,
        min_delta=1e-3,
        seed=1,
        threads=2,
        device="cuda",
        amp="bf16",
        model="model",
    )
    cpu = trial_settings(
        "model", epochs=1, schedule_epochs=1, seed=0, patience=0, min_delta=0.0, cpus=0.5, gpus=0, amp="off"
    )
    assert cpu.threads == 1 and cpu.device == "cpu"  # a fractional CPU still gets a thread


def test_settings_are_frozen_and_complete():
    settings = trial_settings(
        "m", epochs=1, schedule_epochs=1, seed=0, patience=0, min_delta=0.0, cpus=1, gpus=0, amp="off"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 2
    with pytest.raises(TypeError):
        TrialSettings(epochs=1)  # no defaults: a caller cannot forget one
