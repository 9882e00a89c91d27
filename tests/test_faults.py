"""The bad-input and fault table: every way we know a user's input or the machine can go wrong, one
row each (what is set up, the command after `python -m search`, the words its one stderr line must
hold). Every case must exit 2 (130 for signals) with exactly one stderr line, no traceback, within its
bound, and leave the files the user already had in --output as they were. Cases refused before Ray
run in this process; those that need Ray share one private Ray (tests/conftest.py's shared_ray);
address, signal and storage cases run a real `python -m search` in its own session.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from search.cli import main
from tests.conftest import make_image_folder

REPO = Path(__file__).resolve().parents[1]
TINY = ["--trials", "2", "--max-epochs", "2", "--image-size", "32", "--max-concurrent", "1", "--no-report"]
BOUND_S = 120  # no refusal may take longer (most take well under a second; Ray's start is ~10 s)


@dataclass
class Ctx:
    """What a case's setup and command see: a fresh tiny dataset, a guarded output folder, scratch space."""

    tmp: Path
    data: Path
    output: Path
    extra: dict = field(default_factory=dict)

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Ctx], list[str]]
    message: str  # what the one stderr line says
    setup: Callable[[Ctx], None] = lambda ctx: None
    code: int = 2
    writes: bool = False  # the command may add files to --output (a search that started, then stopped)


def search(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ["hotdog", "--data", str(ctx.data), "--output", str(ctx.output), *TINY, *extra]


def with_space(text: str | bytes) -> Callable[[Ctx], list[str]]:
    return lambda ctx: search("--space", str(ctx.file("space.yaml", text)))(ctx)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_case(case: Case, tmp_path: Path, capsys, runner) -> None:
    data = make_image_folder(tmp_path / "data", {"train": 3, "test": 2}, size=12)
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    ctx = Ctx(tmp_path, data, output)
    case.setup(ctx)
    before = snapshot(output)
    started = time.monotonic()
    code, err = runner(case.args(ctx), capsys)
    assert time.monotonic() - started < BOUND_S, "hung past its bound"
    lines = err.strip().splitlines()
    assert code == case.code, err[-3000:]
    assert "Traceback" not in err
    assert len(lines) == 1 and case.message in lines[0], lines
    after = snapshot(output)
    assert {path: after.get(path) for path in before} == before  # the user's files are untouched
    if not case.writes:
        assert after == before  # nothing half-written either


def in_process(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def in_subprocess(args: list[str], capsys) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        start_new_session=True,
    )
    return done.returncode, done.stderr


def run_table(cases: list[Case]):
    return pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])


# --- flags: SearchOptions.validate names the flag in one line, before anything is read ---------------

FLAG_CASES = [
    Case(f"flag {' '.join(flags)}", search(*flags), message)
    for flags, message in [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "1000000"], "--trials must be at least 1 and at most 100000"),
        (["--max-epochs", "-3"], "--max-epochs must be at least 1"),
        (["--max-epochs", "0"], "--max-epochs must be at least 1"),
        (["--time-budget", "-5"], "--time-budget must be positive"),
        (["--time-budget", "0"], "--time-budget must be positive"),
        (["--max-concurrent", "0"], "--max-concurrent must be at least 1"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
        (["--cpus-per-trial", "-1"], "--cpus-per-trial must be positive"),
        (["--cpus-per-trial", "1.5"], "a fraction below 1 or a whole number"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial must not be negative"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial must not be negative: 0, a fraction below 1"),
        (["--memory-per-trial", "-2"], "--memory-per-trial must be a positive number of GB"),
        (["--memory-per-trial", "0"], "--memory-per-trial must be a positive number of GB"),
        (["--max-failures", "-1"], "--max-failures must not be negative"),
        (["--seed", "-1"], "--seed must be 0 or more"),
        (["--seed", str(2**32)], "--seed must be 0 or more (at most 4294967295)"),
        (["--val-fraction", "0"], "--val-fraction must be between 0 and 1"),
        (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
        (["--patience", "-1"], "--patience must not be negative"),
        (["--min-delta", "-0.1"], "--min-delta must be a number of 0 or more"),
        (["--grace-period", "9", "--max-epochs", "8"], "--grace-period must be in [1, --max-epochs]"),
        (["--grace-period", "0"], "--grace-period must be in [1, --max-epochs]"),
        (["--image-size", "8"], "--image-size must be in [16, 1024]"),
        (["--image-size", "4096"], "--image-size must be in [16, 1024]"),
        (["--pending-timeout", "0"], "--pending-timeout must be a positive number of seconds"),
        (["--trial-timeout", "-1"], "--trial-timeout must be a positive number of seconds"),
        (["--amp", "bf16"], "--amp bf16 needs a GPU: give --gpus-per-trial > 0"),
        (["--amp", "fp16", "--gpus-per-trial", "0"], "--amp fp16 needs a GPU"),
        (["--address", " "], "--address must not be empty"),
    ]
]

# --- search spaces: refused naming the file (and key) before --output is touched -------------------

SPACE_CASES = [
    Case(f"space {name}", with_space(text), message)
    for name, text, message in [
        ("unknown distribution", "lr: {gaussian: [0.1, 0.2]}\n", "unknown distribution 'gaussian'"),
        ("lower above upper", "lr: {loguniform: [0.1, 0.001]}\n", "above upper bound"),
        ("loguniform from 0", "lr: {loguniform: [0, 0.1]}\n", "lr must lie in"),
        ("unknown hyperparameter", "dropout: {uniform: [0.1, 0.5]}\n", "unknown hyperparameter 'dropout'"),
        ("out of range", "frozen_layers: {randint: [0, 9]}\n", "frozen_layers must lie in"),
        ("invalid yaml", "lr: [0.1, 0.2\n", "not valid YAML"),
        ("empty file", "", "a space must be a non-empty mapping"),
        ("a list", "- lr\n- batch_size\n", "a space must be a non-empty mapping"),
        ("empty choice", "batch_size: {choice: []}\n", "choice needs a non-empty list"),
        ("two distributions", "lr: {uniform: [0.1, 0.2], loguniform: [0.1, 0.2]}\n", "give exactly one distribution"),
        ("one bound", "lr: {uniform: [0.1]}\n", "expected [lower, upper]"),
        ("not utf-8", b"\xff\xfelr: 0.1\n", "is not UTF-8 text"),
    ]
] + [Case("space file missing", search("--space", "/nonexistent/space.yaml"), "cannot read space file")]

# --- best.yaml for `search train`: refused naming the file and key ----------------------------------


def best_yaml(change) -> Callable[[Ctx], list[str]]:
    def args(ctx: Ctx) -> list[str]:
        if isinstance(change, (str, bytes)):
            path = ctx.file("best.yaml", change)
        else:
            doc = {"task": "hotdog", "data": str(ctx.data), "epochs": 2, "backbone": "mobilenet_v2", "image_size": 32}
            doc["hyperparameters"] = {"lr": 0.001}
            change(doc)
            path = ctx.file("best.yaml", yaml.safe_dump(doc))
        return ["train", str(path), "--output", str(ctx.output / "final")]

    return args


BEST_CASES = [
    Case(f"best.yaml {name}", best_yaml(change), message)
    for name, change, message in [
        ("another task", lambda d: d.update(task="sandwich"), "unknown task 'sandwich'"),
        ("negative batch size", lambda d: d["hyperparameters"].update(batch_size=-4), "batch_size"),
        ("nan lr", lambda d: d["hyperparameters"].update(lr=float("nan")), "lr must be a finite number"),
        ("unknown hyperparameter", lambda d: d["hyperparameters"].update(dropout=0.5), "unknown hyperparameter"),
        ("zero epochs", lambda d: d.update(epochs=0), "epochs must be a whole number"),
        ("epochs a word", lambda d: d.update(epochs="three"), "epochs must be a whole number"),
        ("no hyperparameters", lambda d: d.pop("hyperparameters"), "missing key 'hyperparameters'"),
        ("no data", lambda d: d.pop("data"), "missing key 'data'"),
        ("hyperparameters a list", lambda d: d.update(hyperparameters=[1, 2]), "hyperparameters must be a mapping"),
        ("not yaml", "task: hotdog\nepochs: [3\n", "not valid YAML"),
        ("a list", "- 1\n- 2\n", "expected a mapping"),
        ("not utf-8", b"\xff\xfe\x00task", "is not UTF-8 text"),
    ]
]

# --- paths and commands ------------------------------------------------------------------------------


def held_search(ctx: Ctx) -> None:
    (ctx.output / "results.csv").write_text("trial_id\nabc\n")
    (ctx.output / "search.yaml").write_text("task: hotdog\n")


PATH_CASES = [
    Case("train a missing best.yaml", lambda ctx: ["train", "/nonexistent/best.yaml"], "cannot read"),
    Case(
        "train --epochs 0",
        lambda ctx: [*best_yaml(lambda d: None)(ctx), "--epochs", "0"],
        "--epochs must be at least 1",
    ),
    Case("train --seed -1", lambda ctx: [*best_yaml(lambda d: None)(ctx), "--seed", "-1"], "--seed must be 0 or more"),
    Case("resume a missing folder", lambda ctx: ["resume", "/nonexistent/run"], "holds no search to resume"),
    Case("resume a folder without a search", lambda ctx: ["resume", str(ctx.output)], "holds no search to resume"),
    Case(
        "resume a damaged search.yaml",
        lambda ctx: ["resume", str(ctx.output)],
        "is damaged",
        setup=lambda ctx: (ctx.output / "search.yaml").write_text("task: hotdog\nnot_an_option: 1\n"),
    ),
    Case(
        "resume without its trials",
        lambda ctx: ["resume", str(ctx.output)],
        "its trials folder",
        setup=lambda ctx: (ctx.output / "search.yaml").write_text(f"task: hotdog\noutput: {ctx.output}\n"),
    ),
    Case("output holds a search", search(), "already holds a search", setup=held_search),
    Case(
        "output under a file",
        lambda ctx: search()(ctx)[:4] + [str(ctx.output / "notes.txt" / "out")] + TINY,
        "cannot write to output directory",
    ),
    Case("report of a folder without a search", lambda ctx: ["report", str(ctx.output)], "holds no search"),
]


@run_table(FLAG_CASES + SPACE_CASES + BEST_CASES + PATH_CASES)
def test_refused_before_ray(case, tmp_path, capsys):
    assert not ray.is_initialized()
    run_case(case, tmp_path, capsys, in_process)
    assert not ray.is_initialized()  # refused before any Ray started


ARGPARSE_CASES = [  # not a number at all: argparse prints its usage and this line (exit 2)
    (["--trials", "three"], "argument --trials: expected a whole number, got 'three'"),
    (["--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
    (["--time-budget", "nan"], "argument --time-budget: expected a number, got 'nan'"),
    (["--cpus-per-trial", "inf"], "argument --cpus-per-trial: expected a number, got 'inf'"),
]


@pytest.mark.parametrize("flags, message", ARGPARSE_CASES, ids=[" ".join(c[0]) for c in ARGPARSE_CASES])
def test_non_numbers_get_argparse_usage(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit:
        main(["hotdog", "--data", str(tmp_path), "--output", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit.value.code == 2 and message in err[-1] and not (tmp_path / "out").exists()


# --- --address: refused within 30 s, in one line naming the address, without Ray's own warnings ------


def listening(ctx: Ctx, answer: bytes | None) -> None:
    """A local TCP port that accepts and sends `answer` (an HTTP/1 reply: not Ray), or never accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    ctx.extra["port"] = server.getsockname()[1]
    ctx.extra["server"] = server  # kept open for the case's life

    def serve():
        connection, _ = server.accept()
        connection.recv(100)
        connection.sendall(answer)
        connection.close()

    if answer is not None:
        threading.Thread(target=serve, daemon=True).start()


def at_port(ctx: Ctx) -> list[str]:
    return search("--address", f"127.0.0.1:{ctx.extra['port']}")(ctx)


ADDRESS_CASES = [
    Case(
        "address nothing listens", search("--address", "127.0.0.1:1"), "no Ray cluster answers at --address 127.0.0.1:1"
    ),
    Case("ray client address nothing listens", search("--address", "ray://127.0.0.1:1"), "no Ray cluster answers"),
    Case(
        "address answers http",
        at_port,
        "answers, but not as a Ray cluster does",
        setup=lambda ctx: listening(ctx, b"HTTP/1.1 400 Bad Request\r\n\r\n"),
    ),
    Case("address never answers", at_port, "(timed out)", setup=lambda ctx: listening(ctx, None)),
]


@run_table(ADDRESS_CASES)
def test_bad_addresses_fail_fast(case, tmp_path, capsys):
    run_case(case, tmp_path, capsys, in_subprocess)


# --- signals as schedulers send them: stopped cleanly (state saved, the resume line, exit 130) ----------


def signalled(signum: int, group: bool):
    """Run a tiny search in its own session; send `signum` to it (or its whole group) after the first
    trial; return (exit code, stderr)."""

    def runner(args: list[str], capsys) -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "search", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            for line in proc.stdout:
                if line.startswith("[1/"):
                    (os.killpg if group else os.kill)(proc.pid, signum)
                    break
            out, err = proc.communicate(timeout=BOUND_S)
            return proc.returncode, err
        finally:
            kill_session(proc.pid)

    return runner


def kill_session(sid: int) -> None:
    """SIGKILL whatever is left of the session `sid` leads (nothing, when the search shut Ray down)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[3]) == sid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


SIGNAL_CASES = [  # SIGTERM to the whole process group (`timeout`, Slurm, Kubernetes): the resume test below
    (signal.SIGINT, True),  # Ctrl-C in a terminal
    (signal.SIGTERM, False),  # `kill PID` (SIGINT to the driver alone takes the same handler: ~28 s of CI left out)
]


@pytest.mark.parametrize(
    "signum, group",
    SIGNAL_CASES,
    ids=[f"{signal.Signals(s).name} to {'group' if g else 'driver'}" for s, g in SIGNAL_CASES],
)
def test_signals_stop_the_search_cleanly(signum, group, tmp_path, capsys):
    case = Case("signal", search("--trials", "4"), "continue with: python -m search resume", code=130, writes=True)
    run_case(case, tmp_path, capsys, signalled(signum, group))
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    assert len(table) >= 1  # the partial table is there and valid


def test_a_search_stopped_by_sigterm_to_its_group_resumes(tmp_path, capsys):
    case = Case("signal", search("--trials", "2"), "continue with: python -m search resume", code=130, writes=True)
    run_case(case, tmp_path, capsys, signalled(signal.SIGTERM, True))
    assert len(pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})) >= 1  # as the cases above
    code, err = in_subprocess(["resume", str(tmp_path / "out")], capsys)
    assert code == 0, err[-3000:]
    table = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"trial_id": str})
    assert len(table) == 2 and table["trial_id"].is_unique


# --- storage: the output folder fills up mid-search ---------------------------------------------------


def can_mount_tmpfs() -> bool:
    return (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0
    )


FULL_DISK = """
mount -t tmpfs -o size=1m tmpfs "$OUT" || exit 99
"$PY" -m search hotdog --data "$DATA" --output "$OUT" --storage-path "$STORE" --trials 2 --max-epochs 2 \
    --image-size 32 --max-concurrent 1 --no-report >"$LOG/search.out" 2>"$LOG/search.err" &
search=$!
while [ ! -f "$OUT/results.csv" ] && kill -0 $search 2>/dev/null; do sleep 0.1; done
cp "$OUT/results.csv" "$LOG/before.csv"
dd if=/dev/zero of="$OUT/filler" bs=4k 2>/dev/null  # until the disk is full
wait $search; echo $? >"$LOG/search.code"
cp "$OUT/results.csv" "$LOG/after.csv"
rm "$OUT/filler"
"$PY" -m search resume "$OUT" >"$LOG/resume.out" 2>"$LOG/resume.err"; echo $? >"$LOG/resume.code"
cp "$OUT/results.csv" "$LOG/resumed.csv"
"""


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs `unshare --mount` (root, or a user namespace) for a tmpfs")
def test_a_full_output_disk_stops_the_search_and_resume_continues(tmp_path, tiny_images):
    """--output on a 1 MB tmpfs (in the search's own mount namespace), filled up after the first trial:
    the search stops with one line, results.csv stays the last good version, and once the space is
    back `search resume` finishes the search."""
    logs, out = tmp_path / "logs", tmp_path / "out"
    logs.mkdir()
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "DATA": str(tiny_images), "STORE": str(tmp_path / "store")}
    env.update(PY=sys.executable, LOG=str(logs))
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", FULL_DISK],
        cwd=REPO,
        env=env,
        timeout=600,
        start_new_session=True,
    )
    assert done.returncode == 0
    err = (logs / "search.err").read_text().strip().splitlines()
    assert (logs / "search.code").read_text().strip() == "2", err
    assert len(err) == 1 and "No space left on device" in err[0] and "search resume" in err[0], err
    before, after = (pd.read_csv(logs / f"{n}.csv", dtype={"trial_id": str}) for n in ("before", "after"))
    assert len(after) >= len(before) >= 1  # the last good table, whole
    assert (logs / "resume.code").read_text().strip() == "0", (logs / "resume.err").read_text()[-3000:]
    resumed = pd.read_csv(logs / "resumed.csv", dtype={"trial_id": str})
    assert len(resumed) == 2 and resumed["trial_id"].is_unique


# --- cases that need Ray: one private Ray (2 CPUs, no GPU: shared_ray) for all of them ------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data): what a decompression bomb looks like to Pillow."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def change_data(change) -> Callable[[Ctx], None]:
    return lambda ctx: change(ctx.data)


def remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


DATA_CASES = [
    Case(f"data {name}", search(), message, setup=change_data(change))
    for name, change, message in [
        ("empty folder", lambda r: [remove(c) for c in list(r.iterdir())], "has no train/ folder"),
        ("no test split", lambda r: remove(r / "test"), "has no test/ folder"),
        ("no class folders", lambda r: [remove(d) for d in (r / "train").iterdir()], "has no class folders"),
        ("class without images", lambda r: [remove(f) for f in (r / "train" / "dog").iterdir()], "has no images"),
        ("one class", lambda r: remove(r / "train" / "dog"), "only one class"),
        (
            "test classes differ",
            lambda r: (r / "test" / "dog").rename(r / "test" / "wolf"),
            "but the training data has",
        ),
        ("truncated jpeg", lambda r: truncate(r / "train" / "dog" / "0.jpg"), "unreadable image"),
        ("empty jpeg", lambda r: (r / "train" / "dog" / "0.jpg").write_bytes(b""), "unreadable image"),
        (
            "text named .jpg",
            lambda r: (r / "train" / "cat" / "notes.jpg").write_text("not an image"),
            "unreadable image",
        ),
        ("png body cut", lambda r: (r / "train" / "cat" / "x.png").write_bytes(png_header(64, 64)), "unreadable image"),
        (
            "decompression bomb",
            lambda r: (r / "train" / "cat" / "bomb.png").write_bytes(png_header(30000, 30000)),
            "a guard against decompression bombs",
        ),
        (
            "only unknown suffixes",
            lambda r: [f.rename(f.with_suffix(".heic")) for f in (r / "train" / "dog").iterdir()],
            "has no images",
        ),
    ]
] + [
    Case(
        "data missing",
        lambda ctx: ["hotdog", "--data", "/nonexistent/data", "--output", str(ctx.output), *TINY],
        "does not exist",
    ),
    Case("unknown backbone", search("--backbone", "vgg99"), "unknown backbone"),
]

RESOURCE_CASES = [
    Case(
        "more CPUs than the machine",
        search("--cpus-per-trial", "64"),
        "a trial asks for 64 CPUs (--cpus-per-trial), but this machine has 2 CPUs",
    ),
    Case("one CPU too many", search("--cpus-per-trial", "3"), "but this machine has 2 CPUs"),
    Case(
        "a GPU on a machine without",
        search("--gpus-per-trial", "1"),
        "1 GPU (--gpus-per-trial), but this machine has 2 CPUs, 0 GPUs",
    ),
    Case(
        "half a GPU on a machine without",
        search("--gpus-per-trial", "0.5"),
        "0.5 GPUs (--gpus-per-trial), but this machine has 2 CPUs, 0 GPUs",
    ),
    Case(
        "more memory than the machine",
        search("--memory-per-trial", "100000"),
        "100000 GB of memory (--memory-per-trial)",
    ),
]


def busy_cluster(ctx: Ctx) -> None:
    """Hold one of the two CPUs, so a trial asking for both fits the node but can never start."""

    @ray.remote(num_cpus=1)
    class Holder:
        def ready(self):
            return True

    ctx.extra["holder"] = Holder.remote()
    ray.get(ctx.extra["holder"].ready.remote())


def on_busy_cluster(ctx: Ctx) -> list[str]:
    address = ray.get_runtime_context().gcs_address
    return search("--address", address, "--cpus-per-trial", "2", "--pending-timeout", "3")(ctx)


PENDING_CASES = [
    Case(
        "no trial can start on a busy cluster",
        on_busy_cluster,
        "no trial could start within --pending-timeout 3 s; the search is saved: continue with",
        setup=busy_cluster,
        writes=True,
    )
]


@run_table(DATA_CASES + RESOURCE_CASES + PENDING_CASES)
def test_refused_with_ray(case, shared_ray, tmp_path, capsys):
    run_case(case, tmp_path, capsys, in_process)


def test_table_size():
    tables = [FLAG_CASES, SPACE_CASES, BEST_CASES, PATH_CASES, ADDRESS_CASES, DATA_CASES, RESOURCE_CASES, PENDING_CASES]
    assert sum(map(len, tables)) + len(SIGNAL_CASES) + len(ARGPARSE_CASES) + 1 >= 60
