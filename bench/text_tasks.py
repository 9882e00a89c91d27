"""`python -m bench.text_tasks [--data DIR] [--runs DIR]`: run each text task end to end on the
shared real data (search, then `search train`), as a user would, and write the metrics and wall
times to bench/TEXT_RESULTS.md. Also the pretraining pipeline: `lm --extend-vocab` on the Chinese
corpus, then `ner` from that model, against `ner` from the stock English model.

Budgets are small (a 2-core CPU): they show each task works and roughly how well, not its ceiling.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
# (name, task, data, search flags): run in this order; {runs} is filled in
RUNS = [
    ("classify-en", "classify", "cls_en_agnews_sample", ["--trials", "6", "--max-epochs", "6"]),
    ("qa-en", "qa", "qa_chatterbot/english.tsv", ["--trials", "4", "--max-epochs", "4", "--skip-bad-lines"]),
    ("title-en", "title", "title_content_en_agnews_sample", ["--trials", "4", "--max-epochs", "6"]),
    ("lm-zh", "lm", "lm_zh_pd1998", ["--trials", "2", "--max-epochs", "2", "--extend-vocab"]),
    ("ner-zh-stock", "ner", "ner_zh_pd1998", ["--trials", "2", "--max-epochs", "3", "--extend-vocab"]),
    ("ner-zh-after-lm", "ner", "ner_zh_pd1998", ["--trials", "2", "--max-epochs", "3", "--extend-vocab",
                                                 "--model", "{runs}/lm-zh/final/model"]),
]
HEADLINE = {"lm": "test_perplexity", "title": "test_rouge_l", "qa": "test_mrr", "classify": "test_accuracy", "ner": "test_f1"}


def run(command: list[str], log: Path) -> float:
    started = time.monotonic()
    with open(log, "a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {code}; see {log}")
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--runs", type=Path, default=Path("runs") / "text-bench")
    parser.add_argument("--only", nargs="*", help="run only these names")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("TEXT_RESULTS.md"))
    args = parser.parse_args(argv)
    rows = []
    for name, task, data, flags in RUNS:
        if args.only and name not in args.only:
            continue
        folder = args.runs / name
        log = args.runs / f"{name}.log"
        folder.parent.mkdir(parents=True, exist_ok=True)
        flags = [f.format(runs=args.runs) for f in flags]
        search_s = run([sys.executable, "-m", "search", task, "--data", str(args.data / data), "--output", str(folder),
                        "--overwrite", "--no-report", *flags], log)
        train_s = run([sys.executable, "-m", "search", "train", str(folder / "best.yaml")], log)
        best = folder / "best.yaml"
        doc = yaml.safe_load(best.read_text())
        metrics = json.loads((folder / "final" / "metrics.json").read_text())
        row = {"name": name, "task": task, "data": data, "flags": " ".join(flags), "search_s": search_s, "train_s": train_s,
               "val_metric": f"{doc['metric']['name']} {doc['metric']['value']:.4f}", "epochs": doc["epochs"],
               "test": {k: v for k, v in metrics.items() if k.startswith("test_")}}
        rows.append(row)
        print(f"{name}: search {search_s:.0f}s, train {train_s:.0f}s, {row['val_metric']}, "
              f"{HEADLINE[task]} {row['test'].get(HEADLINE[task], float('nan')):.4f}", flush=True)
    lines = ["# Text tasks on the shared data", "", "`python -m bench.text_tasks` on this machine (2 cores, CPU).", "",
             "| run | data | search flags | search wall | train wall | best validation | epochs | test |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        test = ", ".join(f"{k} {v:.4f}" for k, v in r["test"].items())
        lines.append(f"| {r['name']} | {r['data']} | `{r['flags']}` | {r['search_s']:.0f} s | {r['train_s']:.0f} s | "
                     f"{r['val_metric']} | {r['epochs']} | {test} |")
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
