"""The report page: `write_report(OUTPUT)` draws every figure into OUTPUT/report/ and writes
OUTPUT/report.html, one self-contained page (figures embedded, inline CSS, opens offline): the
headline, the search's facts, notes on a partial search, the results table, one section per figure
and the pretrained against from-scratch comparison when its files are there.
"""

import base64
import datetime
import html
import math
from pathlib import Path

import pandas as pd

from search.layout import Layout, write_atomic
from search.report.confusion import confusion_html
from search.report.cost import plot_cost
from search.report.figures import asha_rungs, plot_curves, plot_parallel, plot_params
from search.report.importance import param_importances, plot_importance
from search.report.load import Search, load_search, scored_trials
from search.report.timeline import plot_timeline, trial_spans

FIGURE_FILES = ("curves.png", "params.png", "parallel.png", "importance.png", "cost.png", "timeline.png")

CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 15px;
       color: #222; margin: 0 auto; padding: 24px 32px 48px; max-width: 1280px; line-height: 1.45; background: #fff; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 20px; margin: 34px 0 6px; border-bottom: 2px solid #e3e3e3; padding-bottom: 4px; }
p.lead { font-size: 17px; margin: 4px 0 14px; }
p.note { color: #555; margin: 4px 0 10px; }
.warn { background: #fff4e0; border-left: 4px solid #f0a030; padding: 8px 12px; margin: 10px 0; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 3px 18px; margin: 10px 0; font-size: 14px; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 4px 7px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f3f5f8; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
tr.best td { background: #ffe8c2; font-weight: 600; }
tr.errored td { background: #fde2e2; color: #8a1f1f; }
td.status-errored, td.status-nan-loss { color: #b00020; font-weight: 600; }
td.status-stopped-early { color: #777; }
.wrap { overflow-x: auto; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
"""


def _cell(value, column: str, metric: str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if column in (metric, "val_loss"):
            return f"{value:.4f}"
        if column == "seconds":
            return f"{value:.1f}"
        return f"{value:.4g}"
    return str(value)


def results_html(search: Search) -> str:
    """The results table (results.csv less its error column), best row highlighted, errored rows marked."""
    table = search.table
    columns = [c for c in table.columns if c != "error"]
    numeric = {c: pd.api.types.is_numeric_dtype(table[c]) for c in columns}
    head = "".join(
        f'<th class="{"" if numeric[c] else "text"}">{html.escape(str(c)).replace("_", "_<wbr>")}</th>' for c in columns
    )  # long names may break after an underscore
    rows = []
    for _, row in table.iterrows():
        trial_id = str(row.get("trial_id"))
        status = str(row.get("status", ""))
        kind = "best" if trial_id == search.best_trial else "errored" if status == "errored" else ""
        error = str(row.get("error") or "")
        title = f' title="{html.escape(error)}"' if error else ""
        cells = []
        for c in columns:
            text = _cell(row[c], c, search.metric)
            if c == "trial_id" and kind == "best":
                text = f"★ {text}"
            elif c == "status" and status in ("errored", "nan loss"):
                text = f"⚠ {text}"
            css = " ".join(
                filter(
                    None, ["" if numeric[c] else "text", f"status-{status.replace(' ', '-')}" if c == "status" else ""]
                )
            )
            cells.append(f'<td class="{css}">{html.escape(text)}</td>')
        rows.append(f'<tr class="{kind}"{title}>{"".join(cells)}</tr>')
    errors = [
        (str(r["trial_id"]), str(r["error"]))
        for _, r in table.iterrows()
        if "error" in table and str(r.get("error") or "").strip()
    ]
    items = "".join(f"<li><code>{html.escape(t)}</code>: {html.escape(e)}</li>" for t, e in errors)
    listing = (
        (
            f'<p class="note">Errors (the whole tracebacks are in <code>trials/&lt;trial_id&gt;/error.txt</code>):</p>'
            f"<ul>{items}</ul>"
        )
        if errors
        else ""
    )
    return (
        f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{listing}'
    )


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _facts(search: Search) -> str:
    best, options = search.best, search.options
    pretrained = best.get("pretrained", options.get("pretrained", True))
    weights = best.get("weights") if pretrained else "none (random initialisation)"
    facts = {
        "data": best.get("data") or options.get("data"),
        "backbone": f"{best.get('backbone') or options.get('backbone', '?')} ({weights or 'weights unknown'})",
        "image size": best.get("image_size") or options.get("image_size"),
        "trials": f"{len(search.table)} in results.csv of {options.get('trials', '?')} asked for",
        "epochs": f"at most {options.get('max_epochs', '?')} per trial; ASHA grace period "
        f"{options.get('grace_period', '?')}, reduction factor {options.get('reduction_factor', '?')}",
        "concurrency": options.get("max_concurrent") or "as many as the CPUs/GPUs fit",
        "seed": options.get("seed", best.get("seed")),
        "output": str(search.output),
    }
    return (
        '<dl class="facts">'
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items() if v is not None)
        + "</dl>"
    )


def _headline(search: Search) -> tuple[str, str]:
    task = search.best.get("task") or search.options.get("task") or "search"
    data = search.best.get("data") or search.options.get("data") or ""
    backbone = search.best.get("backbone") or search.options.get("backbone") or ""
    title = f"{task}: hyperparameter search report"
    if search.best_trial is None:
        return title, f"No trial has a {search.metric} yet."
    row = search.table[search.table["trial_id"] == search.best_trial].iloc[0]
    epoch = f", epoch {int(row['best_epoch'])}" if "best_epoch" in row and pd.notna(row["best_epoch"]) else ""
    lead = (
        f"Best {search.metric} <b>{row[search.metric]:.4f}</b> (trial <code>{html.escape(search.best_trial)}</code>"
        f"{epoch}) &middot; {html.escape(backbone)} on {html.escape(str(data))}"
    )
    return title, lead


def _partial_notes(search: Search) -> list[str]:
    notes = []
    asked = search.options.get("trials")
    if isinstance(asked, int) and len(search.table) < asked:
        notes.append(
            f"Partial search: {len(search.table)} of {asked} trials finished "
            f"(continue it with <code>python -m search resume {html.escape(str(search.output))}</code>)."
        )
    listed = set(search.table["trial_id"].astype(str))
    unfinished = sorted(set(search.histories) - listed)
    if unfinished:
        notes.append(f"Trials with results but not in results.csv (unfinished): {html.escape(', '.join(unfinished))}.")
    epochs = pd.to_numeric(search.table.get("epochs", pd.Series(1, index=search.table.index)), errors="coerce")
    reported = set(search.table.loc[epochs.fillna(1) > 0, "trial_id"].astype(str))  # an errored trial may never report
    missing = sorted(reported - set(search.histories))
    if missing:
        notes.append(
            f"Trials in results.csv without a result.json (no curve or time line): {html.escape(', '.join(missing))}."
        )
    return notes


def _comparison_html(output: Path) -> str:
    layout = Layout(output)
    png, csv = layout.compare_png, layout.compare_csv
    if not (png.is_file() and csv.is_file()):
        return ""
    try:
        table = pd.read_csv(csv)
    except (OSError, ValueError, pd.errors.ParserError):
        table = pd.DataFrame()
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{_cell(float(v), c, '') if c != 'epoch' else int(v)}</td>" for c, v in row.items())
        + "</tr>"
        for _, row in table.iterrows()
    )
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    return (
        f'<h2>Pretrained against from scratch</h2><p class="note">The best configuration trained again on '
        f"train + validation (<code>search train</code>), once from ImageNet weights and once from random "
        f"initialisation; test accuracy after each epoch.</p>{_image(png, 'pretrained against from scratch')}"
        f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
    )


def section(heading: str, caption: str, body) -> str:
    """One part of the page: a heading, then its figure (a PNG path) with a caption, its HTML, or a
    note saying why it is missing (plain text)."""
    if isinstance(body, Path):
        body = f'<p class="note">{html.escape(caption)}</p>{_image(body, heading)}'
    elif not body.startswith("<"):
        body = f'<p class="note missing">{html.escape(body)}</p>'
    else:
        body = f'<p class="note">{html.escape(caption)}</p>{body}'
    return f"<h2>{html.escape(heading)}</h2>{body}"


def write_report(output: Path, metric: str | None = None, mode: str | None = None) -> Path:
    """Write OUTPUT/report.html (one self-contained page) and the figures as OUTPUT/report/*.png, for a
    finished or partial search. The metric and its mode default to the search's (see load_search)."""
    search = load_search(output, metric, mode)
    layout = Layout(search.output)
    figures = layout.figures
    for name in FIGURE_FILES:  # an earlier report's figure must not outlive the data behind it
        (figures / name).unlink(missing_ok=True)
    title, lead = _headline(search)
    table = results_html(search) if len(search.table) else "No trial has finished yet."
    sections = [
        section(
            "Trials",
            f"Best first; the best trial's row is highlighted (★), errored rows are red (hover "
            f"for the error). {search.metric} is each trial's best over its epochs (reached at "
            f"best_epoch).",
            table,
        )
    ]

    rungs = asha_rungs(
        search.options.get("grace_period", 1),
        search.options.get("reduction_factor", 2),
        int(search.options.get("max_epochs") or 1),
    )
    curves = plot_curves(search, figures / "curves.png") if search.histories else None
    sections.append(
        section(
            "Learning curves",
            f"{search.metric} after each epoch. ASHA compares trials at its rungs "
            f"(epochs {', '.join(map(str, rungs)) or '-'}) and stops the worse ones: those are thin "
            f"dashed grey.",
            curves or "No trial has reported an epoch yet (no trials/*/result.json).",
        )
    )

    scored = search.space and not scored_trials(search.table, search.metric).empty
    params = plot_params(search, figures / "params.png") if scored else None
    sections.append(
        section(
            f"Hyperparameters against {search.metric}",
            f"Each trial's best {search.metric} against "
            f"each searched hyperparameter, over its whole searched range (log axes for log-uniform "
            f"ones).",
            params or "No scored trial yet, or nothing searched.",
        )
    )
    parallel = plot_parallel(search, figures / "parallel.png") if scored else None
    sections.append(
        section(
            "Parallel coordinates",
            f"One line per trial through every searched hyperparameter, coloured by its best {search.metric}.",
            parallel or "No scored trial yet.",
        )
    )

    importances, used, why = param_importances(search)
    importance = plot_importance(search, importances, used, figures / "importance.png") if importances else None
    sections.append(
        section(
            "Hyperparameter importance",
            "Optuna's PED-ANOVA on a study rebuilt from results.csv: how "
            "much each hyperparameter explains of what separates the best trials. With few trials, read "
            "it as a hint.",
            importance or why,
        )
    )

    cost = plot_cost(search, figures / "cost.png") if search.histories else None
    sections.append(
        section(
            "Accuracy against cost",
            f"Each trial's best {search.metric} against the seconds its epochs took, one colour per "
            "backbone: a bigger network must earn its cost.",
            cost or "No trial has reported its epoch times yet.",
        )
    )

    timeline = plot_timeline(search, figures / "timeline.png") if trial_spans(search.histories) else None
    sections.append(
        section(
            "Time line",
            "Each trial from its first to its last report, stacked into the slots that ran "
            "concurrently (from Ray's whole-second timestamps); below, the share of slots busy.",
            timeline or "No trial has reported an epoch yet.",
        )
    )
    sections.append(_comparison_html(search.output))
    sections.append(confusion_html(search.output))  # final/'s, when `search train` ran
    notes = "".join(f'<p class="warn">{n}</p>' for n in _partial_notes(search))
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f'<h1>{html.escape(title)}</h1><p class="lead">{lead}</p>{notes}{_facts(search)}{"".join(sections)}'
        f'<p class="note" style="margin-top:40px">Generated {generated} by <code>search.report</code> from '
        f"{html.escape(str(search.output))}.</p></body></html>\n"
    )
    write_atomic(layout.report, page)
    return layout.report
