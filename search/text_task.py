"""Driver side of the text tasks: read and split the data (the same way for the search and for
`search train`), pick the model and tokenizer, measure vocabulary coverage (and extend it with
`--extend-vocab`), tokenize once for every trial; and `search train` for text: train the chosen
configuration on train + validation, test it, and save a model directory `--model` accepts.
"""

import json
import math
import re
import time
from pathlib import Path

import torch

from search.errors import UserError
from search.options import trial_settings
from search.results import package_versions, retraining, write_atomic
from trainables import text_data
from trainables.text_tasks import FORMATS

TEST_FRACTION = 0.1  # carved from train when the data has no test.* file
TOKENIZER_DIR = "tokenizer"  # inside --output, when --extend-vocab changed the tokenizer


def default_max_epochs(n_train: int) -> int:
    """Small data wants more epochs, large data fewer; ASHA and the plateau rule cut the rest."""
    return 15 if n_train < 1_000 else 8 if n_train < 10_000 else 5


def read_splits(kind: str, data: str | None, val_fraction: float, seed: int, skip_bad_lines: bool) -> tuple[dict, dict]:
    """{"train", "validation", "test"} examples and facts about them. A split the data lacks is
    carved from train, seeded: test first (TEST_FRACTION), then validation (val_fraction)."""
    if not data:
        raise UserError(f"{kind} needs --data: a file, or a directory with train.* and dev.*/valid.*/test.* files")
    fmt = FORMATS[kind]
    files = text_data.find_splits(data)
    splits, skipped = {}, {}
    for name, path in files.items():
        if path is not None:
            splits[name], skipped[name] = text_data.read_examples(path, fmt, skip_bad_lines)
    duplicates = 0
    if FORMATS[kind] == "pairs":  # repeated pairs add nothing to train and would sit on both sides of a carved split
        for name, examples in splits.items():
            splits[name] = list(dict.fromkeys(examples))
            duplicates += len(examples) - len(splits[name])
    carved = []
    for name, fraction in (("test", TEST_FRACTION), ("validation", val_fraction)):
        if name not in splits:
            splits["train"], splits[name] = carve_split(kind, splits["train"], fraction, seed)
            carved.append(name)
        if not splits[name]:
            raise UserError(f"{files['train']}: too few examples to carve a {name} split from")
    facts = {"data": str(Path(data).expanduser().resolve()), "files": {k: str(v) for k, v in files.items() if v},
             "carved": carved, "skipped": {k: v for k, v in skipped.items() if v}, "duplicates": duplicates}
    return splits, facts


def carve_split(kind: str, examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """text_data.carve, stratified by label for classify; for pairs, whole groups of the same first
    part (a question asked with several answers stays on one side, so validation tests retrieval,
    not memory)."""
    if kind == "classify":
        return text_data.carve(examples, fraction, seed, [label for label, _ in examples])
    if FORMATS[kind] != "pairs":
        return text_data.carve(examples, fraction, seed)
    groups: dict[str, list] = {}
    for pair in examples:
        groups.setdefault(pair[0], []).append(pair)
    rest, carved = text_data.carve(list(groups), fraction, seed)
    return [p for key in rest for p in groups[key]], [p for key in carved for p in groups[key]]


def label_names(kind: str, splits: dict, facts: dict) -> list[str]:
    """Class names (classify) or tags (ner, "O" first) seen in train; another split with one train
    never saw is refused now, not after the search."""
    if kind not in ("classify", "ner"):
        return []
    def seen(examples):
        return {label for label, _ in examples} if kind == "classify" else {t for _, tags in examples for t in tags}
    names = sorted(seen(splits["train"]), key=lambda t: (t != "O", t))
    for name in ("validation", "test"):
        unknown = sorted(seen(splits[name]) - set(names))
        if unknown:
            where = facts["files"].get(name, facts["files"]["train"])
            raise UserError(f"{where}: {name} has {'label' if kind == 'classify' else 'tag'} {unknown[0]!r}, "
                            "which the training split never has")
    if kind == "classify" and len(names) < 2:
        raise UserError(f"{facts['files']['train']}: only one label ({names[0]}); a classifier needs at least two")
    return names


def texts_of(kind: str, examples: list) -> list[str]:
    if kind == "lm":
        return examples
    if kind == "ner":
        return [" ".join(tokens) for tokens, _ in examples]
    if kind == "classify":
        return [text for _, text in examples]
    return [part for pair in examples for part in pair]


def special_ids(tokenizer) -> dict:
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return {"start": start, "end": end, "pad": tokenizer.pad_token_id, "mask": tokenizer.mask_token_id}


def prepare_text_search(task, options) -> dict:
    """Everything the trials of a text search share: settings, tokenized splits, the record for
    best.yaml. Tokenizes once; trials only truncate and pad."""
    from trainables import text_models
    from trainables.text_tasks import encode

    kind = task.name
    splits, facts = read_splits(kind, options.data, options.val_fraction, options.seed, options.skip_bad_lines)
    labels = label_names(kind, splits, facts)
    model_path, source = text_models.resolve_model(options.model)
    tokenizer = text_models.load_tokenizer(model_path)
    lines = [f"{kind}: {facts['data']}: {text_data.describe(splits['train'], FORMATS[kind])} for training; "
             f"{len(splits['validation'])} validation, {len(splits['test'])} test"
             + (f" ({' and '.join(facts['carved'])} carved from train, seed {options.seed})" if facts["carved"] else "")]
    if facts["duplicates"]:
        lines.append(f"dropped {facts['duplicates']} repeated pair(s)")
    for name, n in facts["skipped"].items():
        lines.append(f"skipped {n} bad line(s) in {facts['files'][name]} (--skip-bad-lines)")

    share, missing = text_models.vocabulary_coverage(tokenizer, texts_of(kind, splits["train"]))
    tokenizer_path, added = None, []
    if options.extend_vocab and missing:
        added = text_models.extend_vocabulary(tokenizer, missing)
        tokenizer_path = str(options.output / TOKENIZER_DIR)
        tokenizer.save_pretrained(tokenizer_path)
        after, _ = text_models.vocabulary_coverage(tokenizer, texts_of(kind, splits["train"]))
        lines.append(f"--extend-vocab: added {len(added)} tokens to the vocabulary; [UNK] share {share:.1%} -> {after:.1%}")
    elif share > text_models.UNK_WARN_SHARE:
        lines.append(f"warning: {share:.1%} of the training tokens are [UNK] for this model ({len(missing)} distinct "
                     f"words/characters it cannot read); --extend-vocab adds them")
    max_epochs = options.max_epochs or default_max_epochs(len(splits["train"]))
    lines.append(f"model: {source}; vocabulary {len(tokenizer)}; up to {max_epochs} epochs per trial")

    data = {name: encode(kind, tokenizer, splits[name], labels) for name in ("train", "validation")}
    settings = {
        "kind": kind, "model": model_path, "vocab_size": len(tokenizer), "labels": labels, "special": special_ids(tokenizer),
        "extended_vocab": text_models.has_added_tokens(tokenizer), "pretrained": options.pretrained,
        "schedule_epochs": max_epochs, **trial_settings(options, max_epochs),
    }
    record = {  # what best.yaml carries besides the hyperparameters: enough to rebuild the same splits
        "data": facts["data"], "model": model_path, "weights": source, "pretrained": options.pretrained,
        "tokenizer": tokenizer_path, "added_tokens": len(added), "labels": labels, "seed": options.seed,
        "val_fraction": options.val_fraction, "skip_bad_lines": options.skip_bad_lines, "schedule_epochs": max_epochs,
    }
    return {"settings": settings, "data": data, "weights": None, "record": record, "summary": "\n".join(lines),
            "max_epochs": max_epochs}


# ---- search train ----

def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 on words (each CJK character a word): longest common subsequence."""
    unit = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")
    p, r = unit.findall(prediction.lower()), unit.findall(reference.lower())
    if not p or not r:
        return 0.0
    previous = [0] * (len(r) + 1)
    for a in p:
        current = [0]
        for j, b in enumerate(r):
            current.append(previous[j] + 1 if a == b else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(p) + len(r))


@torch.no_grad()
def generate_titles(model, tokenizer, contents: list[list[int]], length: int, special: dict, device) -> list[str]:
    from trainables.text_tasks import EVAL_BATCH, clip, padded

    model.eval()
    titles = []
    for i in range(0, len(contents), EVAL_BATCH):
        ids, mask = padded([clip(c, length) for c in contents[i:i + EVAL_BATCH]], special["pad"])
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=32, num_beams=1,
                             do_sample=False)
        titles.extend(tokenizer.batch_decode(out, skip_special_tokens=True))
    return titles


def train_text_final(doc: dict, output: Path, data: str | None = None, pretrained: bool | None = None,
                     epochs: int | None = None, checkpoint: Path | None = None, seed: int | None = None) -> dict:
    """`search train` for a text task: the same splits as the search, the configuration trained on
    train + validation for the epochs the search found best (seeded by `seed` when given, else the
    search's seed), tested on test after each epoch; writes OUTPUT/model/ (model + tokenizer,
    loadable with --model) and metrics.json."""
    from trainables import text_models
    from trainables.checkpoints import load_state
    from trainables.text_tasks import encode, evaluate, fit_text_model

    kind = doc["task"]
    pretrained = doc.get("pretrained", True) if pretrained is None else pretrained
    run = retraining(doc, epochs, seed)
    epochs = run["epochs"]
    splits, facts = read_splits(kind, data or doc["data"], doc.get("val_fraction", 0.2), doc.get("seed", 0),
                                doc.get("skip_bad_lines", False))
    labels = label_names(kind, splits, facts)
    if doc.get("labels") and labels != doc["labels"]:
        raise UserError(f"the data's labels {labels} differ from best.yaml's {doc['labels']}")
    model_path = doc.get("model") or text_models.resolve_model(None)[0]
    tokenizer = text_models.load_tokenizer(doc.get("tokenizer") or model_path)
    special = special_ids(tokenizer)
    output = output.expanduser().resolve()
    output.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train = encode(kind, tokenizer, splits["train"] + splits["validation"], labels)
    test = encode(kind, tokenizer, splits["test"], labels)
    config = doc["hyperparameters"]
    settings = {"kind": kind, "model": model_path, "vocab_size": len(tokenizer), "labels": labels, "special": special,
                "extended_vocab": text_models.has_added_tokens(tokenizer), "pretrained": pretrained,
                "schedule_epochs": run["schedule_epochs"], "min_delta": 0.0, "seed": run["seed"],
                "threads": torch.get_num_threads(), "device": str(device)}
    started, history = time.monotonic(), []

    if checkpoint is not None:
        model = text_models.build_model(kind, model_path, len(tokenizer), len(labels), False, special)
        try:
            state = load_state(checkpoint)
        except (OSError, RuntimeError) as e:
            raise UserError(f"cannot load checkpoint {checkpoint}: {e}") from None
        model.load_state_dict(state["model"])
        model.to(device)
        if kind == "lm":
            from trainables.text_tasks import lm_windows
            test["windows"] = lm_windows(test["lines"], config["max_length"], special)
        history.append({"epoch": state["epoch"], **evaluate(kind, model, test, config["max_length"], special, len(tokenizer),
                                                             labels, device)})
    else:
        print(f"{kind}: training on {len(splits['train']) + len(splits['validation'])} examples for {epochs} epochs "
              f"({'pretrained ' + doc.get('weights', model_path) if pretrained else 'random initialisation'}), "
              f"testing on {len(splits['test'])}", flush=True)

        def report(metrics: dict, state) -> None:
            history.append({k: v for k, v in metrics.items() if k != "stop"})
            shown = "  ".join(f"{k.replace('val_', 'test_')} {v:.4f}" for k, v in metrics.items()
                              if k.startswith("val_") or k == "train_loss")
            print(f"epoch {metrics['epoch']}/{epochs}  {shown}  ({metrics['epoch_seconds']:.0f}s)", flush=True)

        model = fit_text_model(config, settings, train, test, report, epochs=epochs, patience=0)

    scores = {k.replace("val_", "test_"): v for k, v in history[-1].items() if k.startswith("val_")}
    if kind == "title":
        titles = generate_titles(model, tokenizer, test["source"], config["max_length"], special, device)
        references = [title for title, _ in splits["test"]]
        scores["test_rouge_l"] = sum(rouge_l(p, r) for p, r in zip(titles, references)) / len(references)
        for (reference, content), title in list(zip(splits["test"], titles))[:3]:
            print(f"  {content[:60]!r} -> {title!r} (reference {reference!r})")
    model_dir = output / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    metrics = {"task": kind, **scores, "epochs": history[-1]["epoch"], "seed": settings["seed"], "model": model_path,
               "pretrained": pretrained, "from_checkpoint": str(checkpoint) if checkpoint else None, "labels": labels,
               "hyperparameters": config, "seconds": time.monotonic() - started, "history": history,
               "versions": package_versions()}
    write_atomic(output / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float) and math.isfinite(v))
    print(f"{kind}: {shown}; wrote {model_dir}/ (use it with --model) and {output / 'metrics.json'}")
    return metrics
