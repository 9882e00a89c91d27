"""The search report: `write_report(OUTPUT)` turns a finished or partial search (results.csv, best.yaml,
search.yaml, space.yaml, trials/*/result.json) into OUTPUT/report.html and OUTPUT/report/*.png;
`write_scratch_comparison` plots a pretrained against a from-scratch `search train` run (compare.png,
compare.csv), which the report then includes. One job a module: load, figures, importance,
timeline, compare, page (style: what the figures share).
"""

from search.report import style  # noqa: F401  (first: the headless matplotlib backend, before any pyplot)
from search.report.compare import write_scratch_comparison
from search.report.load import load_search
from search.report.page import write_report

__all__ = ["load_search", "write_report", "write_scratch_comparison"]
