"""The default space and budget of a text search, chosen from the data: what the training split holds
(examples, token lengths, labels and their smallest count, the [UNK] share) decides the space's
max_length, frozen_layers and batch_size, starting from the task's spaces/NAME.yaml, and the
estimated cost of an epoch decides --max-epochs so the whole search (ASHA's trials and the re-runs
of the best) fits TARGET_SECONDS. The rules are the tables below, each with its reason.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextFacts:
    """What the rules look at, measured on the training split."""

    task: str
    examples: int  # training examples
    lengths: list[int]  # tokens per sequence the encoder reads ([CLS]/[SEP] included, before any cut)
    labels: int  # classes (classify) or tags (ner); 0 for the other tasks
    smallest_label: int  # examples of the rarest class (classify); 0 otherwise
    unk_share: float  # share of the training tokens the tokenizer maps to [UNK]
    embeddings_train: bool  # --extend-vocab grows the vocabulary: the token embeddings always train
    stages: int  # what frozen_layers counts: the embeddings, then each transformer layer
    windowed: bool = False  # lm: lines are cut into max_length windows, so every token is read
    largest_label: int = 0  # examples of the commonest class (classify); 0 otherwise

    def quantile(self, q: float) -> int:
        ordered = sorted(self.lengths)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


@dataclass(frozen=True)
class Rule:
    """Set `name` to `value(facts)` when `applies(facts)`; the first rule that applies wins."""

    name: str
    applies: Callable[[TextFacts], bool]
    value: Callable[[TextFacts], Any]
    why: str  # the reason, or what was measured


LENGTHS = (32, 64, 128, 256)  # max_length steps: each doubles the cost of a long example
CPU_LENGTH = 128  # longest max_length offered: padded to the cap, a batch of 128 cost 2.4x one of 64 here


def covering_length(facts: TextFacts, share: float = 0.9) -> int:
    """The shortest step that holds `share` of the sequences whole (at most CPU_LENGTH)."""
    need = facts.quantile(share)
    return next((n for n in LENGTHS if n >= need and n <= CPU_LENGTH), CPU_LENGTH)


def length_choice(facts: TextFacts) -> dict | int:
    """The covering length and the step below it when that still holds half the sequences whole."""
    top = covering_length(facts)
    lower = [n for n in LENGTHS if n < top and n >= facts.quantile(0.5)]
    return {"choice": [lower[-1], top]} if lower else top


def frozen_range(low: float, high: float) -> Callable[[TextFacts], dict]:
    """frozen_layers as shares of the stages, so one rule means the same for a 6- or 12-layer model."""
    return lambda f: {"randint": [round(low * f.stages), max(round(low * f.stages), round(high * f.stages))]}


RULES = (
    Rule(
        "max_length",
        lambda f: not f.windowed,  # lm's windows read every token whatever the length: its space keeps 64
        length_choice,
        "the shortest of 32/64/128 that holds 90% of the sequences whole, and the step below when that "
        "holds half of them: cost grows with the tokens (0.65 s per 1,000 trained here) and labels of short "
        "texts rarely need their tail",
    ),
    Rule(
        "frozen_layers",
        lambda f: f.embeddings_train,
        frozen_range(0.0, 0.3),
        "--extend-vocab: the new token rows train whatever is frozen, so gradients cross every layer anyway "
        "(freezing saves little) and the lower layers must learn the new tokens' context",
    ),
    Rule(
        "frozen_layers",
        lambda f: 0 < f.smallest_label < 50 or f.examples < 300,
        frozen_range(0.45, 0.9),
        "few examples (per class): freeze more, so the copied layers are not overfitted; the frozen "
        "prefix's states are computed once per node, so deep freezing also makes epochs cheap",
    ),
    Rule(
        "frozen_layers",
        lambda f: f.examples >= 10_000,
        frozen_range(0.0, 0.45),
        "much data: fine-tune deeper",
    ),
    Rule(
        "frozen_layers",
        lambda f: f.task not in ("lm", "title"),  # their spaces keep their own measured ranges
        frozen_range(0.0, 0.75),
        "the middle: from full fine-tuning to the top layers only (a shared prefix makes the deep end cheap)",
    ),
    Rule(
        "batch_size",
        lambda f: f.examples >= 1_000 and f.task == "classify",
        lambda f: {"choice": [16, 32]},
        "enough data for fewer, larger steps: an AdamW step costs the same whatever the batch",
    ),
)


def shown(entry: Any) -> str:
    """A space entry as the YAML file writes it, on one line: {randint: [0, 2]}, 64."""
    return (
        ", ".join(f"{{{kind}: {list(values)}}}" for kind, values in entry.items())
        if isinstance(entry, dict)
        else str(entry)
    )


def choose_space(base: dict, facts: TextFacts) -> tuple[dict, str]:
    """(the task's space with the rules applied, one line saying what was seen and chosen)."""
    space, chosen = dict(base), []
    for name in dict.fromkeys(rule.name for rule in RULES):
        rule = next((r for r in RULES if r.name == name and r.applies(facts)), None)
        if rule is not None:
            space[name] = rule.value(facts)
            chosen.append(f"{name} {shown(space[name])}")
    seen = (
        f"{facts.examples} training examples, {facts.quantile(0.5)}/{facts.quantile(0.9)} tokens (median/90%)"
        + (
            f", {facts.labels} labels ({facts.largest_label} to {facts.smallest_label} examples)"
            if facts.smallest_label
            else ""
        )
        + (f", [UNK] {facts.unk_share:.0%}" if facts.unk_share >= 0.01 else "")
        + (", extended vocabulary" if facts.embeddings_train else "")
    )
    return space, f"{seen}: {'; '.join(chosen)}"


# ---- the budget: --max-epochs (and, when even few epochs do not fit, a cheaper space) ----

TARGET_SECONDS = 15 * 60  # trials and re-runs; Ray's start, the data and estimate errors get the rest of 20
# Seconds per 1,000 tokens trained on one CPU thread by max_length, MiniLM-L6 (384 wide), every layer
# (forward, backward, fused AdamW), batches of similar lengths: measured here on 2,400 Chinese reviews,
# 0.6-0.65 at 64 on a quiet machine, 1.27 at 64 and 1.30 at 128 with the two cores shared by four jobs.
# Between steps, the nearest longer one's; 256 is extrapolated (attention's share grows with length).
TRAIN_S_PER_KTOKEN = {32: 0.6, 64: 0.65, 128: 0.7, 256: 0.85}
EVAL_S_PER_KTOKEN = 0.25  # no backward pass, batches of 64
TRIAL_START_S = 8.0  # building the model and the first batches, per trial
GPU_SPEEDUP = 20.0  # a guess, not measured here (no GPU): a GPU trial step vs one CPU thread
MIN_EPOCHS = 2  # below this ASHA cannot stop the bad half of the trials early: make the space cheaper first


def typical(entry: Any):
    """The middle of a space entry: a choice's middle value, a range's midpoint, a plain value."""
    if not isinstance(entry, dict):
        return entry
    ((kind, values),) = entry.items()
    if kind == "choice":
        return sorted(values)[len(values) // 2]
    return (values[0] + values[1]) / 2


def epoch_seconds(facts: TextFacts, space: dict, val_examples: int, gpu: bool = False) -> float:
    """A trial-epoch's estimated cost at the space's typical max_length and depth: tokens trained (the
    layers above a shared frozen prefix only) plus the validation pass."""
    length = typical(space.get("max_length", 128))
    read = facts.lengths if facts.windowed else [min(n, length) for n in facts.lengths]
    tokens = sum(read) * 1.1  # bucketed batches: ~10% of a batch is padding (1% measured, 28% unbucketed)
    frozen = 0 if facts.embeddings_train else typical(space.get("frozen_layers", 0))
    trained = 1.0 - min(frozen, facts.stages - 1) / facts.stages
    per_token = next((v for n, v in TRAIN_S_PER_KTOKEN.items() if n >= length), TRAIN_S_PER_KTOKEN[256])
    val_tokens = tokens * val_examples / max(facts.examples, 1)
    seconds = tokens / 1000 * per_token * trained + val_tokens / 1000 * EVAL_S_PER_KTOKEN
    return seconds / GPU_SPEEDUP if gpu else seconds


def asha_epochs(trials: int, max_epochs: int, reduction: int = 2, grace: int = 1) -> float:
    """Trial-epochs ASHA spends: every trial runs to the first rung, 1/reduction of them to the next...
    (x1.3: asynchronous promotion, with few trials seen, lets more through than the ideal share)."""
    rungs = [grace * reduction**k for k in range(64) if grace * reduction**k < max_epochs] + [max_epochs]
    total, reach, last = 0.0, float(trials), 0
    for rung in rungs:
        total += reach * (rung - last)
        reach, last = reach / reduction, rung
    return 1.3 * total


def budget_epochs(
    facts: TextFacts, space: dict, val_examples: int, options, most: int, slots: int, reselect: int | None = None
) -> tuple[int, str]:
    """The most epochs (at most `most`) for which the search's estimated cost (ASHA over --trials,
    then `reselect` (default --reselect) candidates x --reselect-seeds re-runs as long as the best)
    fits TARGET_SECONDS on `slots` concurrent trials; at least 1. Returns (epochs, one line of the estimate)."""
    per_epoch = epoch_seconds(facts, space, val_examples, gpu=options.gpus_per_trial > 0)
    reselect = getattr(options, "reselect", 0) if reselect is None else reselect
    reruns = reselect * getattr(options, "reselect_seeds", 0)

    def cost(epochs: int) -> float:
        runs = options.trials + reruns
        return (asha_epochs(options.trials, epochs, options.reduction_factor) + reruns * epochs) * per_epoch + (
            runs * TRIAL_START_S
        )

    epochs = max([e for e in range(1, most + 1) if cost(e) / slots <= TARGET_SECONDS] or [1])
    return epochs, (
        f"~{per_epoch:.0f}s per trial-epoch, {options.trials} trials + {reruns} re-runs on {slots} slot(s): "
        f"{epochs} epoch(s), ~{math.ceil(cost(epochs) / slots / 60)} of {TARGET_SECONDS // 60} minutes"
    )


@dataclass(frozen=True)
class Cheaper:
    """When fewer than MIN_EPOCHS fit: replace `name`'s entry by `value(entry)` (None: no change)."""

    name: str
    value: Callable[[Any, TextFacts], Any]
    why: str


def lowest_choice(entry, facts):
    return min(entry["choice"]) if isinstance(entry, dict) and "choice" in entry else None


def deeper_freezing(entry, facts):
    if facts.embeddings_train or not isinstance(entry, dict) or "randint" not in entry:
        return None
    low, high = entry["randint"]
    return {"randint": [(low + high + 1) // 2, high]} if high > low else None


def largest_choice(entry, facts):
    return max(entry["choice"]) if isinstance(entry, dict) and "choice" in entry else None


CHEAPER = (
    Cheaper("max_length", lowest_choice, "the shorter length: an epoch's cost follows its tokens"),
    Cheaper(
        "frozen_layers",
        deeper_freezing,
        "the deeper half: a shared frozen prefix is computed once, so a trial-epoch trains only the layers above",
    ),
    Cheaper("batch_size", largest_choice, "the largest batch: fewer optimizer steps per epoch"),
)


@dataclass(frozen=True)
class Budget:
    space: dict  # the space, made cheaper when few epochs fitted
    epochs: int  # --max-epochs
    reselect: int  # --reselect: 0 when its re-runs left a trial too few epochs
    line: str  # the estimate, and what was made cheaper


def fit_budget(space: dict, facts: TextFacts, val_examples: int, options, most: int, slots: int) -> Budget:
    """The epochs the budget fits; while fewer than MIN_EPOCHS fit, the CHEAPER steps in order make
    the space cheaper first, then the selection's re-runs go: a search whose trials run one epoch
    ranks what one epoch shows, and on pd1998's NER (a grown vocabulary) every trial's validation F1
    after one epoch was 0.00-0.015 where the recipe's 3 epochs test 0.43 (bench/QUALITY.md, session 12)."""
    space, changed = dict(space), []
    reselect = getattr(options, "reselect", 0)
    epochs, line = budget_epochs(facts, space, val_examples, options, most, slots)
    for step in CHEAPER:
        if epochs >= min(MIN_EPOCHS, most):
            break
        value = step.value(space[step.name], facts) if step.name in space else None
        if value is None:
            continue
        space[step.name] = value
        changed.append(f"{step.name} {shown(value)}")
        epochs, line = budget_epochs(facts, space, val_examples, options, most, slots)
    if epochs < min(MIN_EPOCHS, most) and reselect:
        fewer, fewer_line = budget_epochs(facts, space, val_examples, options, most, slots, reselect=0)
        if fewer > epochs:
            epochs, line, reselect = fewer, fewer_line, 0
            changed.append("no re-runs of the best (--reselect 0), so each trial trains more than one epoch")
    return Budget(space, epochs, reselect, line + (f" (cheaper: {', '.join(changed)})" if changed else ""))
