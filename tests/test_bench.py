"""The benchmark suite end to end (slow, 2-5 minutes): `python -m bench --quick` on the real data
writes a results table with a finite ratio for each of the five benchmarks, and the search decoded
every train/ image exactly once. Timings are never asserted: they depend on the machine's load."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import BUDGETS
from bench.run import main
from tests.conftest import SHARED_HOTDOG, make_image_folder

REPO = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> dict[str, list[str]]:
    """The results table as {row id: cells}; ids look like 1a, 2c, 4e."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if re.fullmatch(r"[1-5][a-z]", cells[0]):
            rows[cells[0]] = cells
    return rows


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_HOTDOG.is_dir(), reason=f"real data not found at {SHARED_HOTDOG}")
def test_quick_mode_writes_a_finite_ratio_for_every_benchmark(tmp_path):
    output = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--data", str(SHARED_HOTDOG), "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    text = output.read_text()
    assert "python -m bench --quick" in text and "total runtime" in text
    rows = table_rows(text)
    for benchmark in "12345":
        ratios = [float(cells[4]) for id, cells in rows.items() if id.startswith(benchmark) and cells[4] != "n/a"]
        assert ratios and all(math.isfinite(r) for r in ratios), (benchmark, rows)

    baseline, measured = next(cells[2:4] for cells in rows.values() if cells[3].endswith(" decodes"))
    images = int(re.match(r"(\d+) train images", baseline).group(1))
    decodes = int(re.match(r"(\d+) decodes", measured).group(1))
    assert decodes == images == 2 * BUDGETS["quick"]["per_class"]  # --quick keeps that many images of each class


def test_bad_data_dir_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["--quick", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "r.md")]) == 2
    assert "not an ImageFolder tree" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()


@pytest.mark.slow
def test_scale_quick_writes_every_figure_and_the_plot(tmp_path):
    """bench/scale.py end to end on its two small sizes: every column measured for both."""
    output = tmp_path / "SCALE.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--quick", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    rows = [line for line in output.read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["200", "800"]
    assert all(len(row.strip("|").split("|")) == 17 for row in rows)
    assert (tmp_path / "scale.png").stat().st_size > 10_000


@pytest.mark.slow
def test_gpu_bench_dry_run_runs_its_steps_on_the_cpu(tmp_path):
    """On a machine without a GPU, bench/gpu.py --dry-run runs the same steps on tiny data (the
    search included) and writes nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--dry-run", "--output", str(tmp_path / "GPU.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "fp32 images/s" in done.stdout and "| search exit status | 0 |" in done.stdout
    assert not (tmp_path / "GPU.md").exists()


def test_probe_prints_a_row_per_backbone_and_size_and_the_concatenation(tmp_path, capsys):
    from bench import probe

    root = make_image_folder(tmp_path, {"train": 10, "test": 4}, size=24)
    assert probe.main(["--data", str(root), "--backbones", "mobilenet_v2", "efficientnet_lite0", "--sizes", "32"]) == 0
    rows = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["mobilenet_v2 32 px", "efficientnet_lite0 32 px", "concatenated, 32 px"]
    for row in rows:
        assert float(row[1]) in probe.DECAYS and 0 <= float(row[2]) <= 1 and 0 <= float(row[3]) <= 1


def test_head_grid_prints_the_test_accuracy_of_every_epoch_for_each_cell(tmp_path, capsys):
    from bench import head_grid

    root = make_image_folder(tmp_path, {"train": 10, "test": 4}, size=24)
    args = ["--data", str(root), "--backbones", "mobilenet_v2", "--size", "32", "--epochs", "1", "2"]
    assert head_grid.main([*args, "--head-lrs", "0.01", "0.1"]) == 0
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("mobilenet_v2", epochs, lr) for epochs in ("1", "2") for lr in ("0.01", "0.1")
    ]
    for row in rows:
        accuracy = [float(a) for a in row[3].split()]
        assert len(accuracy) == int(row[1]) and all(
            a in (0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1) for a in accuracy
        )
        assert float(row[4]) == accuracy[-1]


def test_imbalance_builds_its_sets_from_the_first_photos_of_each_class(tmp_path):
    from PIL import Image

    from bench import imbalance

    source = make_image_folder(tmp_path / "source", {"train": 12, "test": 9})
    prior = imbalance.build(source, tmp_path / "prior", [12, 3], "prior", None)
    counts = {f"{p.parent.name}/{p.name}": len(list(p.iterdir())) for p in prior.glob("*/*")}
    assert counts == {"train/cat": 12, "train/dog": 3, "test/cat": 9, "test/dog": 2}  # the training proportions
    assert sorted(f.name for f in (prior / "train" / "dog").iterdir()) == ["0.jpg", "1.jpg", "10.jpg"]  # sorted first
    resized = imbalance.build(source, tmp_path / "resized", [4, 2], "all", (60, 45))
    assert len(list((resized / "test" / "dog").iterdir())) == 9
    assert Image.open(next((resized / "train" / "cat").iterdir())).size == (60, 45)


def test_text_imbalance_keeps_the_commonest_label_and_a_tenth_of_the_others(tmp_path):
    from bench import text_imbalance

    source = tmp_path / "source"
    source.mkdir()
    lines = [f"{label}\t{label} line {i}" for label, n in (("a", 40), ("b", 30), ("c", 5)) for i in range(n)]
    (source / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (source / "test.tsv").write_text("a\tx\nb\ty\n", encoding="utf-8")
    root, counts = text_imbalance.build(source, tmp_path / "built")
    assert counts == {"a": 40, "b": 4, "c": 4}
    kept = (root / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert "b\tb line 3" in kept and "b\tb line 4" not in kept  # the first lines of each rarer label
    assert (root / "test.tsv").read_text(encoding="utf-8") == "a\tx\nb\ty\n"
