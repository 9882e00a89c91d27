"""`python -m bench.text_tasks [--data DIR] [--runs DIR] [--only NAME ...] [--seed N]`: run each text
task end to end on the shared real data (search, then `search train`), as a user would, and append
a row per run (metrics, wall times) to RUNS/results.md, to be copied into bench/TEXT_RESULTS.md with
notes. Also the pretraining pipeline: `lm --extend-vocab` on the Chinese corpus, then `ner` from
that model, against `ner` from the stock English model.

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
# (name, task, data, search flags, train flags): run in this order; {lm} is filled in
RUNS = [
    ("classify-en", "classify", "cls_en_agnews_sample", ["--trials", "6", "--max-epochs", "6"], []),
    ("qa-en", "qa", "qa_chatterbot/english.tsv", ["--trials", "4", "--max-epochs", "4", "--skip-bad-lines"], []),
    ("title-en", "title", "title_content_en_agnews_sample", ["--trials", "4", "--max-epochs", "6"], []),
    # pretraining is searched briefly (2 epochs pick the learning rates), then trained for longer: at 2
    # epochs perplexity was still falling fast (451 -> 252) and ner gained nothing on test from it
    ("lm-zh", "lm", "lm_zh_pd1998", ["--trials", "2", "--max-epochs", "2", "--extend-vocab"], ["--epochs", "8"]),
    ("ner-zh-stock", "ner", "ner_zh_pd1998", ["--trials", "2", "--max-epochs", "3", "--extend-vocab"], []),
    (
        "ner-zh-after-lm",
        "ner",
        "ner_zh_pd1998",
        ["--trials", "2", "--max-epochs", "3", "--extend-vocab", "--model", "{lm}"],
        [],
    ),
]
HEADLINE = {
    "lm": "test_perplexity",
    "title": "test_rouge_l",
    "qa": "test_mrr",
    "classify": "test_accuracy",
    "ner": "test_f1",
}


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
    parser.add_argument("--seed", type=int, default=0, help="the searches' seed (repeat a comparison with others)")
    parser.add_argument(
        "--lm-model", type=Path, help="the model ner-zh-after-lm starts from (default: lm-zh's, in RUNS)"
    )
    args = parser.parse_args(argv)
    lm_model = args.lm_model or args.runs / "lm-zh" / "final" / "model"
    output = args.runs / "results.md"
    for name, task, data, flags, train_flags in RUNS:
        if args.only and name not in args.only:
            continue
        folder = args.runs / name
        log = args.runs / f"{name}.log"
        folder.parent.mkdir(parents=True, exist_ok=True)
        flags = [f.format(lm=lm_model) for f in flags] + ["--seed", str(args.seed)]
        search_s = run(
            [
                sys.executable,
                "-m",
                "search",
                task,
                "--data",
                str(args.data / data),
                "--output",
                str(folder),
                "--overwrite",
                "--no-report",
                *flags,
            ],
            log,
        )
        train_s = run([sys.executable, "-m", "search", "train", str(folder / "best.yaml"), *train_flags], log)
        best = folder / "best.yaml"
        doc = yaml.safe_load(best.read_text())
        metrics = json.loads((folder / "final" / "metrics.json").read_text())
        val_metric = f"{doc['metric']['name']} {doc['metric']['value']:.4f}"
        test = {k: v for k, v in metrics.items() if k.startswith("test_")}
        print(
            f"{name}: search {search_s:.0f}s, train {train_s:.0f}s, {val_metric}, "
            f"{HEADLINE[task]} {test.get(HEADLINE[task], float('nan')):.4f}",
            flush=True,
        )
        if not output.exists():
            output.write_text(
                "| run | data | search flags | train flags | search wall | train wall | best validation "
                "| epochs | test |\n|---|---|---|---|---|---|---|---|---|\n"
            )
        with open(output, "a") as table:
            scores = ", ".join(f"{k} {v:.4f}" for k, v in test.items())
            shown = f"`{' '.join(train_flags)}`" if train_flags else "-"
            table.write(
                f"| {name} | {data} | `{' '.join(flags)}` | {shown} | {search_s:.0f} s | "
                f"{train_s:.0f} s | {val_metric} | {metrics['epochs']} | {scores} |\n"
            )
        print(f"appended to {output}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
