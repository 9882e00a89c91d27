"""Ray for one search: a quiet environment for Ray Tune and Optuna, a private local Ray (shielded
from signals sent to the driver's process group) or the cluster at --address (refused at once when
nothing answers there), the checks that every node sees the storage path and that a trial's
resources fit a node, and a shutdown of only the Ray this process started.
"""

import contextlib
import logging
import os
import signal
import socket
import threading

import optuna
import ray

from search import resources, storage
from search.layout import TRIALS
from search.options import SearchOptions
from trainables.basics import UserError


def configure_ray_env(verbose: bool) -> None:
    """Environment and log levels for Ray Tune and Optuna: quiet (errors only) unless -v."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Save the experiment state every second (Tune's default: every 10 s or more), so a search
    # killed outright loses at most a second of bookkeeping and resume re-runs no finished trial.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # A trial stopped while its actor is stuck (search/watch.py's --trial-timeout) is killed after
    # this long; Tune's default, 600 s, would hold its CPUs and delay the search's end that much.
    os.environ.setdefault("TUNE_FORCE_TRIAL_CLEANUP_S", "30")
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(level)
    # Tune logs every failed trial's whole traceback; SearchProgress prints its error line and where
    # the traceback is saved instead
    logging.getLogger("ray.tune").setLevel(logging.INFO if verbose else logging.CRITICAL)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


PROBE_S = 5  # seconds to wait for --address to answer (connect, then reply): a cluster answers in milliseconds
JOIN_S = 18  # seconds ray.init may take to join it: with the probe, --address fails within 30 s
# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, or Ray Client's
# server) answers with its own SETTINGS frame (frame type 4, the 4th byte of its 9-byte header)
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def probe_address(address: str) -> None:
    """Refuse an --address where no Ray answers, at once: ray.init would retry for minutes, printing
    its own warnings. "auto" (and addresses without a port) are left to ray.init."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S) as connection:
            connection.sendall(HTTP2_HELLO)
            answer = connection.recv(9)
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else e.strerror or str(e)
        raise UserError(f"no Ray cluster answers at --address {address} ({reason})") from None
    if len(answer) < 4 or answer[3] != 4:
        raise UserError(f"--address {address} answers, but not as a Ray cluster does (no gRPC there)")


@contextlib.contextmanager
def shielded_from_group_signals():
    """Block SIGTERM while Ray starts its processes: they inherit the blocked signal, so a SIGTERM to
    the whole process group (what `timeout` and batch schedulers send) reaches only the driver, which
    stops the search cleanly while Ray keeps running (Ray itself blocks SIGINT in them the same way).
    ray.shutdown() then kills them (SIGKILL after a second)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_ray(address: str | None, verbose: bool) -> bool:
    """Start a private local Ray (address="local", so a cluster already on this machine is never
    joined by accident), or connect to --address. Returns whether we started it."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    if address:  # an existing cluster: its own start options (dashboard, resources) already apply
        probe_address(address)
        try:
            with within(JOIN_S), contextlib.nullcontext() if verbose else stderr_hidden():
                ray.init(address=address, **quiet)
        except TimeoutError:
            ray.shutdown()
            raise UserError(
                f"the Ray cluster at --address {address} did not let this driver join within {JOIN_S} s"
            ) from None
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot join the Ray cluster at --address {address}: {error_line(e)}") from None
    else:
        with shielded_from_group_signals():
            ray.init(address="local", include_dashboard=False, dashboard_host="127.0.0.1", **quiet)
    return True


@contextlib.contextmanager
def within(seconds: int):
    """Raise TimeoutError in the main thread after `seconds` (elsewhere: no bound)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def stderr_hidden():
    """Send file descriptor 2 to /dev/null: Ray's C++ client logs its retries there, not through logging."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def error_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


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
        note = resources.check_resources(
            options, resources.alive_nodes(), bool(options.address) and resources.cluster_can_grow(options)
        )
        if note:
            print(note, flush=True)
        yield
    finally:
        if started_ray:
            ray.shutdown()
