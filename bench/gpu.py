"""`python -m bench.gpu [--data DIR] [--timeout 480] [--dry-run]`: does a search keep a GPU busy?
On a CUDA machine: images per second of the training step in bf16 against fp32 (target >= 1.5x),
pinned non-blocking host-to-device copies against plain ones, then a hotdog search at 224 px with
--gpus-per-trial 0.25 --amp bf16 (4 trials sharing the GPU, reused actors) while nvidia-smi is
sampled: the GPU's busy share during the search and its memory after each trial (no growth over 16).
--dry-run runs the same steps on the CPU on tiny generated data (what CI checks); writes bench/GPU.md.
"""

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hotdog"
BATCH = 64
STEPS = 30  # timed training steps per precision, after WARMUP
WARMUP = 5  # steps that pay for cuDNN's algorithm search and CUDA's lazy initialisation


def step_rate(device: str, amp: str, image_size: int, pinned: bool = True) -> float:
    """Images per second of MobileNetV2's whole training step (fine-tuning every layer)."""
    from trainables import backbones
    from trainables.loop import AMP_DTYPES

    model = backbones.build_model("mobilenet_v2", 2, None).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    host = torch.randn(BATCH, 3, image_size, image_size)
    host = host.pin_memory() if pinned and device == "cuda" else host
    labels = torch.randint(0, 2, (BATCH,))
    autocast = torch.autocast("cuda", dtype=AMP_DTYPES[amp]) if amp != "off" else torch.autocast("cpu", enabled=False)
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        x = host.to(device, non_blocking=pinned)
        y = labels.to(device, non_blocking=pinned)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return STEPS * BATCH / (time.perf_counter() - started)


class GpuSampler(threading.Thread):
    """nvidia-smi's utilization and memory every `interval` seconds, until stopped."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.samples, self.stopped = interval, [], threading.Event()

    def run(self):
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self.stopped.wait(self.interval):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.split("\n")[0]
                busy, used = (float(v) for v in out.split(","))
            except (OSError, ValueError, subprocess.TimeoutExpired):
                continue
            self.samples.append({"t": time.monotonic(), "busy": busy, "memory_mb": used})


def search(data: Path, output: Path, dry: bool, timeout: float) -> tuple[int, float]:
    """The search, as a user would run it; returns (exit status, seconds)."""
    if dry:
        # no selection re-runs: the dry run checks the steps (a GPU run re-runs its best as users' do)
        flags = ["--image-size", "32", "--trials", "2", "--max-epochs", "1", "--max-concurrent", "2", "--reselect", "0"]
    else:
        flags = [
            "--image-size",
            "224",
            "--trials",
            "16",
            "--max-epochs",
            "2",
            "--gpus-per-trial",
            "0.25",
            "--amp",
            "bf16",
            "--max-concurrent",
            "4",
        ]
    command = [
        sys.executable,
        "-m",
        "search",
        "hotdog",
        "--data",
        str(data),
        "--output",
        str(output),
        "--no-report",
        "--backbone",
        "mobilenet_v2",
        *flags,
    ]
    started = time.monotonic()
    try:
        code = subprocess.run(command, cwd=REPO, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = 124
    return code, time.monotonic() - started


def trial_gpu_memory(output: Path) -> list[float]:
    """Each trial's GPU memory (MB, allocated by torch) at its last report, in the order trials ended."""
    ends = []
    for result in (output / "trials").glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows and "gpu_mb" in rows[-1]:
            ends.append((rows[-1]["timestamp"], rows[-1]["gpu_mb"]))
    return [mb for _, mb in sorted(ends)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--timeout", type=float, default=480.0, help="seconds for the search (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, on tiny generated data")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "GPU.md")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("bench.gpu: no CUDA device here; --dry-run runs the same steps on the CPU", file=sys.stderr)
        return 2
    device, size = ("cuda", 224) if not args.dry_run else ("cpu", 32)
    rows = {"fp32 images/s": step_rate(device, "off", size)}
    if not args.dry_run:
        rows["bf16 images/s"] = step_rate(device, "bf16", size)
        rows["bf16 / fp32"] = rows["bf16 images/s"] / rows["fp32 images/s"]
        rows["pageable copies images/s (fp32)"] = step_rate(device, "off", size, pinned=False)
        rows["pinned non-blocking / pageable"] = rows["fp32 images/s"] / rows["pageable copies images/s (fp32)"]
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        data = args.data
        if args.dry_run:
            from bench.scale import make_folder

            data = make_folder(Path(tmp) / "data", 24, classes=2)
            make_folder(data, 8, seed=1, split="test", classes=2)
        sampler = GpuSampler()
        if cuda:
            sampler.start()
        code, seconds = search(data, Path(tmp) / "search", args.dry_run, args.timeout)
        sampler.stopped.set()
        memory = trial_gpu_memory(Path(tmp) / "search")
    rows["search exit status"] = code
    rows["search seconds"] = seconds
    if sampler.samples:
        busy = [s["busy"] for s in sampler.samples]
        rows["GPU busy share during the search"] = sum(b > 0 for b in busy) / len(busy)
        rows["GPU utilization, mean %"] = sum(busy) / len(busy)
        rows["GPU memory used, max MB"] = max(s["memory_mb"] for s in sampler.samples)
    if memory:
        rows["torch GPU MB after the first / last trial"] = f"{memory[0]:.0f} / {memory[-1]:.0f} ({len(memory)} trials)"
    where = torch.cuda.get_device_name(0) if cuda and not args.dry_run else "CPU (dry run: no GPU figures)"
    lines = [
        "# GPU benchmark",
        "",
        f"- {datetime.date.today()}, {where}; `python -m bench.gpu {' '.join(sys.argv[1:])}`",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.dry_run:  # a dry run checks the steps; it must not overwrite a GPU machine's figures
        args.output.write_text(text, encoding="utf-8")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
