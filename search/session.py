"""Ray for one search: a quiet environment for Ray Tune and Optuna, a private local Ray (or the
cluster at --address), the check that every node sees the storage path, and a shutdown of only the
Ray this process started.
"""

import contextlib
import logging
import os

import optuna
import ray

from search import storage
from search.layout import TRIALS
from search.options import SearchOptions


def configure_ray_env(verbose: bool) -> None:
    """Environment and log levels for Ray Tune and Optuna: quiet (errors only) unless -v."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Save the experiment state every second (Tune's default: every 10 s or more), so a search
    # killed outright loses at most a second of bookkeeping and resume re-runs no finished trial.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(level)
    # Tune logs every failed trial's whole traceback; SearchProgress prints its error line and where
    # the traceback is saved instead
    logging.getLogger("ray.tune").setLevel(logging.INFO if verbose else logging.CRITICAL)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def start_ray(address: str | None, verbose: bool) -> bool:
    """Start a private local Ray (address="local", so a cluster already on this machine is never
    joined by accident), or connect to --address. Returns whether we started it."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    if address:  # an existing cluster: its own start options (dashboard, resources) already apply
        ray.init(address=address, **quiet)
    else:
        ray.init(address="local", include_dashboard=False, dashboard_host="127.0.0.1", **quiet)
    return True


def experiment_path(options: SearchOptions) -> str:
    """Ray's experiment folder (a local path or a URI): `trials` under --storage-path, else under --output."""
    return storage.join(options.storage_path or str(options.output), TRIALS)


def storage_flag(options: SearchOptions) -> str:
    return "--storage-path" if options.storage_path else "--output"


@contextlib.contextmanager
def ray_session(options: SearchOptions):
    """Start or join Ray for one search, after checking every node sees the storage path; shut
    down on leaving only a Ray we started."""
    started_ray = start_ray(options.address, options.verbose)
    try:
        storage.check_visible(options.storage_path or str(options.output), storage_flag(options))
        yield
    finally:
        if started_ray:
            ray.shutdown()
