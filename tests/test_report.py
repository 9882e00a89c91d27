"""Tests for search.report: the report of a small real search (every figure a valid PNG, the page
self-contained and listing every trial), partial searches, errored rows, other metric names, the
pretrained-vs-scratch comparison, and a headless Chromium render of the page when Chromium is here."""

import base64
import io
import json
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from search.report.compare import write_scratch_comparison
from search.report.figures import asha_rungs
from search.report.load import load_search, metric_mode
from search.report.page import write_report
from search.report.timeline import assign_slots, busy_fraction, trial_spans
from trainables.basics import UserError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALWAYS = ("curves.png", "params.png", "parallel.png", "timeline.png")  # importance.png needs differing scores
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def finished_search(tiny_search) -> Path:
    """tests/conftest.py's tiny search: 4 hotdog trials of 2 epochs (the tests below copy it to edit it)."""
    return tiny_search


@pytest.fixture
def search_copy(finished_search, tmp_path) -> Path:
    """A copy of the real search to edit (without its checkpoints, which the report never reads)."""
    return Path(shutil.copytree(finished_search, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint_*")))


class Page(HTMLParser):
    """What the tests look at in report.html: every src/href, the results table's rows, the notes."""

    def __init__(self, text: str):
        super().__init__()
        self.links, self.rows, self.tags = [], [], set()
        self._row, self._cell, self._tables = None, None, 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.links += [attrs[key] for key in ("src", "href") if key in attrs]
        if tag == "table":
            self._tables += 1
        if tag == "tr" and self._tables == 1:
            self._row = {"class": attrs.get("class", ""), "title": attrs.get("title", ""), "cells": []}
        if tag == "td" and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None:
            self._row["cells"].append(self._cell.strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self.rows.append(self._row)
            self._row = None


def read_page(output: Path) -> tuple[str, Page]:
    text = (output / "report.html").read_text(encoding="utf-8")
    return text, Page(text)


def assert_png(source) -> None:
    """A real PNG (magic bytes, decodes) of a sensible size."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    assert data[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size[0] >= 300 and image.size[1] >= 200, image.size


def trial_ids(output: Path) -> list[str]:
    return pd.read_csv(output / "results.csv", dtype=str, keep_default_na=False)["trial_id"].tolist()


def edit_results(output: Path, change) -> None:
    table = pd.read_csv(output / "results.csv", dtype=str, keep_default_na=False)
    change(table).to_csv(output / "results.csv", index=False)


def section_of(text: str, heading: str) -> str:
    """The HTML of one section of the page: from its heading to the next."""
    start = text.index(f"<h2>{heading}</h2>")
    end = text.find("<h2>", start + 1)
    return text[start : end if end > 0 else None]


def shows_importance(text: str) -> bool:
    """Whether the importance section holds the figure (else a note saying why not)."""
    part = section_of(text, "Hyperparameter importance")
    assert ("data:image/png" in part) != ('class="note missing"' in part)
    return "data:image/png" in part


def row_for(page: Page, trial_id: str) -> dict:
    return next(row for row in page.rows if row["cells"][0].lstrip("★ ") == trial_id)


# --- the report of a real search -------------------------------------------------------------------


def test_report_writes_every_figure_as_png(search_copy, capsys):
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_report(search_copy)
    assert path == search_copy.resolve() / "report.html"
    assert capsys.readouterr() == ("", "")  # quiet
    assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []
    for name in ALWAYS:
        assert_png(search_copy / "report" / name)
    text, _ = read_page(search_copy)
    importance = search_copy / "report" / "importance.png"
    assert importance.exists() == shows_importance(text)  # the figure, or a note saying why not
    if importance.exists():
        assert_png(importance)


def test_page_is_self_contained(search_copy):
    write_report(search_copy)
    text, page = read_page(search_copy)
    figures = sorted((search_copy / "report").glob("*.png"))
    images = [link for link in page.links if link.startswith("data:")]
    assert len(images) == len(figures)
    for link in page.links:
        assert link.startswith("data:image/png;base64,") or (search_copy / link).exists(), link
    for link in images:
        assert_png(base64.b64decode(link.split(",", 1)[1]))
    assert "script" not in page.tags and "link" not in page.tags  # no JS, no external stylesheet
    assert "http://" not in text and "https://" not in text and "style" in page.tags


def test_table_lists_every_trial_best_highlighted(search_copy):
    write_report(search_copy)
    text, page = read_page(search_copy)
    ids = trial_ids(search_copy)
    assert sorted(row["cells"][0].lstrip("★ ") for row in page.rows) == sorted(ids)
    best = yaml.safe_load((search_copy / "best.yaml").read_text())
    assert [row["cells"][0] for row in page.rows if row["class"] == "best"] == [f"★ {best['metric']['trial_id']}"]
    assert "hotdog" in text and best["backbone"] in text and "val_accuracy" in text
    columns = pd.read_csv(search_copy / "results.csv").columns
    assert len(page.rows[0]["cells"]) == len(columns) - 1  # every column but error


def test_partial_search(search_copy):
    """Interrupted: a trial that never finished (no row, no folder) and one whose row is there but
    whose result.json is gone; and one more trial folder than rows (still running when stopped)."""
    first, second, third = trial_ids(search_copy)[:3]
    shutil.rmtree(search_copy / "trials" / first)
    (search_copy / "trials" / second / "result.json").unlink()
    edit_results(search_copy, lambda t: t[~t["trial_id"].isin([first, third])])
    write_report(search_copy)
    text, page = read_page(search_copy)
    listed = {row["cells"][0].lstrip("★ ") for row in page.rows}
    assert first not in listed and third not in listed and second in listed
    assert "Partial search: 2 of 4 trials" in text
    assert f"without a result.json (no curve or time line): {second}" in text
    assert f"(unfinished): {third}" in text
    for name in ALWAYS:
        assert_png(search_copy / "report" / name)


def test_interrupted_before_any_trial_finished(search_copy):
    """Killed while the first trials ran: result.json lines but no results.csv or best.yaml yet."""
    ids = trial_ids(search_copy)
    (search_copy / "results.csv").unlink()
    (search_copy / "best.yaml").unlink()
    write_report(search_copy)
    text, page = read_page(search_copy)
    assert "No trial has finished yet" in text and page.rows == []
    assert f"(unfinished): {', '.join(sorted(ids))}" in text
    assert sorted(p.name for p in (search_copy / "report").glob("*.png")) == ["curves.png", "timeline.png"]


def test_without_space_file(search_copy):
    """An output folder without space.yaml: the searched columns are guessed from results.csv."""
    (search_copy / "space.yaml").unlink()
    write_report(search_copy)
    assert_png(search_copy / "report" / "params.png")
    assert_png(search_copy / "report" / "parallel.png")


def test_errored_trial(search_copy):
    error = "RuntimeError: CUDA out of memory <b>&</b>"

    def add_errored(table):
        """A trial that raised before its first epoch: its sampled hyperparameters, no metric."""
        row = table.iloc[0].copy()
        row[["trial_id", "epochs", "status", "val_accuracy", "best_epoch", "val_loss", "seconds", "error"]] = [
            "err00001",
            "0",
            "errored",
            "",
            "0",
            "",
            "0.0",
            error,
        ]
        return pd.concat([table, pd.DataFrame([row])], ignore_index=True)

    edit_results(search_copy, add_errored)
    write_report(search_copy)
    text, page = read_page(search_copy)
    row = row_for(page, "err00001")
    assert row["class"] == "errored" and "⚠ errored" in row["cells"] and row["title"] == error
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in text and "<b>&</b>" not in text  # escaped
    assert "without a result.json" not in text  # an errored trial that never reported is not missing anything
    for name in ALWAYS:
        assert_png(search_copy / "report" / name)


def test_only_errored_trials(search_copy):
    edit_results(search_copy, lambda t: t.assign(status="errored", val_accuracy="", error="boom"))
    write_report(search_copy)
    text, page = read_page(search_copy)
    assert "No trial has a val_accuracy yet" in text and not shows_importance(text)
    assert not (search_copy / "report" / "params.png").exists()  # nothing scored: a note instead
    assert {row["class"] for row in page.rows} == {"errored"}


@pytest.mark.parametrize(
    "scores, has_figure",
    [
        pytest.param(["0.9", "0.5", "0.7", "0.6"], True, id="differing-scores"),
        pytest.param(["0.5", "0.5", "0.5", "0.5"], False, id="equal-scores"),
        pytest.param(["0.9", "", "", ""], False, id="one-scored-trial"),
    ],
)
def test_importance_figure_or_note(search_copy, scores, has_figure):
    edit_results(search_copy, lambda t: t.assign(val_accuracy=scores))
    write_report(search_copy)
    text, _ = read_page(search_copy)
    assert (search_copy / "report" / "importance.png").exists() == has_figure == shows_importance(text)
    if has_figure:
        assert_png(search_copy / "report" / "importance.png")


def test_other_metric_name(search_copy):
    """A later task's metric (here val_accuracy renamed val_perplexity everywhere): taken from
    best.yaml, minimised because of its name."""
    edit_results(
        search_copy,
        lambda t: t.rename(columns={"val_accuracy": "val_perplexity"}).assign(
            val_perplexity=[str(v) for v in (3.0, 1.5, 2.0, 4.0)]
        ),
    )
    ids = trial_ids(search_copy)
    best = yaml.safe_load((search_copy / "best.yaml").read_text())
    best["metric"] = {"name": "val_perplexity", "value": 1.5, "trial_id": ids[1]}
    (search_copy / "best.yaml").write_text(yaml.safe_dump(best))
    rename = {"val_accuracy": "val_perplexity"}
    for path in (search_copy / "trials").glob("*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({rename.get(k, k): v for k, v in r.items()}) + "\n" for r in lines))
    search = load_search(search_copy)
    assert (search.metric, search.mode) == ("val_perplexity", "min")
    assert search.best_trial == ids[1]
    write_report(search_copy)
    text, page = read_page(search_copy)
    assert "Best val_perplexity <b>1.5000</b>" in text
    assert row_for(page, ids[1])["class"] == "best"
    for name in (*ALWAYS, "importance.png"):
        assert_png(search_copy / "report" / name)


def test_metric_and_mode_can_be_given(search_copy):
    """Another column of results.csv as the metric: its mode inferred or given, its own best trial."""
    table = pd.read_csv(search_copy / "results.csv", dtype={"trial_id": str})
    search = load_search(search_copy, metric="val_loss")
    assert search.mode == "min" and search.best_trial == table.loc[table["val_loss"].idxmin(), "trial_id"]
    worst = table.loc[table["val_loss"].idxmax(), "trial_id"]
    assert load_search(search_copy, metric="val_loss", mode="max").best_trial == worst
    write_report(search_copy, metric="val_loss")
    assert "Best val_loss" in read_page(search_copy)[0]


def test_no_search_is_refused(tmp_path):
    with pytest.raises(UserError, match="holds no search"):
        write_report(tmp_path)


# --- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, mode",
    [
        ("val_accuracy", "max"),
        ("val_loss", "min"),
        ("val_perplexity", "min"),
        ("Perplexity", "min"),
        ("bleu", "max"),
        ("val_error", "min"),
    ],
)
def test_metric_mode(metric, mode):
    assert metric_mode(metric) == mode


@pytest.mark.parametrize(
    "grace, factor, max_epochs, rungs",
    [
        (1, 2, 8, [1, 2, 4, 8]),
        (1, 2, 3, [1, 2]),
        (2, 3, 20, [2, 6, 18]),
        (1, 2, 1, [1]),
        (3, 4, 2, []),
    ],
)
def test_asha_rungs(grace, factor, max_epochs, rungs):
    assert asha_rungs(grace, factor, max_epochs) == rungs


@pytest.mark.parametrize(
    "spans, limit, slots",
    [
        pytest.param({"a": (0, 5), "b": (5, 9)}, None, {"a": 0, "b": 0}, id="one-after-another"),
        pytest.param({"a": (0, 5), "b": (1, 6), "c": (5.5, 9)}, None, {"a": 0, "b": 1, "c": 0}, id="two-at-once"),
        pytest.param({"a": (0, 5), "b": (4.5, 8)}, None, {"a": 0, "b": 0}, id="within-timestamp-slack"),
        pytest.param(
            {"a": (0, 5), "b": (1, 3), "c": (4.5, 8)}, None, {"a": 0, "b": 1, "c": 1}, id="free-slot-beats-slack"
        ),
        pytest.param({"a": (0, 5), "b": (1, 6), "c": (2, 7)}, 2, {"a": 0, "b": 1, "c": 0}, id="limit-caps-slots"),
    ],
)
def test_assign_slots(spans, limit, slots):
    assert assign_slots(spans, limit) == slots


def test_busy_fraction():
    times, busy = busy_fraction([(0, 4), (2, 6)], 2)
    assert times.tolist() == [0, 2, 4, 6] and busy.tolist() == [0.5, 1.0, 0.5, 0.0]


def test_trial_spans_use_first_epoch_duration():
    history = pd.DataFrame({"epoch": [1, 2], "timestamp": [100, 103], "time_this_iter_s": [2.5, 3.0]})
    assert trial_spans({"t": history}) == {"t": (98.0, 103.5)}  # whole-second stamps read as midpoints


# --- pretrained against from scratch -------------------------------------------------------------


def metrics(accuracies: list[float], pretrained: bool) -> dict:
    history = [
        {"epoch": i + 1, "train_loss": 1 - a, "test_loss": 1 - a, "test_accuracy": a, "epoch_seconds": 1.0}
        for i, a in enumerate(accuracies)
    ]
    return {
        "task": "hotdog",
        "test_accuracy": accuracies[-1],
        "history": history,
        "pretrained": pretrained,
        "backbone": "mobilenet_v2",
        "weights": "ImageNet" if pretrained else "none (random initialisation)",
    }


def test_write_scratch_comparison(tmp_path):
    path = write_scratch_comparison(metrics([0.7, 0.85, 0.9], True), metrics([0.5, 0.55, 0.6, 0.62], False), tmp_path)
    assert path == tmp_path / "compare.png"
    assert_png(path)
    table = pd.read_csv(tmp_path / "compare.csv")
    assert list(table.columns) == ["epoch", "pretrained_test_accuracy", "scratch_test_accuracy"]
    assert table["epoch"].tolist() == [1, 2, 3, 4]
    assert table["pretrained_test_accuracy"].tolist()[:3] == [0.7, 0.85, 0.9]
    assert pd.isna(table["pretrained_test_accuracy"][3])  # the shorter run leaves a hole
    assert table["scratch_test_accuracy"].tolist() == [0.5, 0.55, 0.6, 0.62]


def test_scratch_comparison_without_history(tmp_path):
    """A metrics.json from --from-checkpoint has no history: its final accuracy is one point."""
    checkpoint = {"test_accuracy": 0.8, "epochs": 3, "pretrained": True, "backbone": "resnet18"}
    write_scratch_comparison(checkpoint, metrics([0.5, 0.6], False), tmp_path)
    table = pd.read_csv(tmp_path / "compare.csv")
    assert table.set_index("epoch")["pretrained_test_accuracy"].dropna().to_dict() == {3: 0.8}


def test_report_includes_comparison(search_copy):
    write_report(search_copy)
    assert "Pretrained against from scratch" not in read_page(search_copy)[0]
    write_scratch_comparison(metrics([0.7, 0.9], True), metrics([0.5, 0.6], False), search_copy)
    write_report(search_copy)
    text, page = read_page(search_copy)
    assert "Pretrained against from scratch" in text and "pretrained_test_accuracy" in text
    figures = len(list((search_copy / "report").glob("*.png")))
    assert sum(link.startswith("data:image/png") for link in page.links) == figures + 1  # + compare.png


# --- the page in a browser ------------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium to render report.html headless")
def test_page_renders_in_chromium(search_copy, tmp_path):
    page = write_report(search_copy)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # text, a table and figures, not a blank page
        white = sum(count for count, colour in colours if min(colour) >= 250)
        assert white < 0.9 * image.size[0] * image.size[1]
