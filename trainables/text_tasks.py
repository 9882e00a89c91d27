"""The five text tasks on one loop (trainables/loop.py): each adds only how its examples become
token ids, its batches, its loss and its validation metrics.

    lm        masked-LM (15% of tokens, BERT's 80/10/10)   val_perplexity
    title     content -> title, encoder-decoder            val_loss (ROUGE-L in `search train`)
    qa        bi-encoder, in-batch negatives               val_mrr, val_recall_at_1
    classify  sequence classification                      val_accuracy, val_macro_f1
    ner       token classification, BIO, first sub-token   val_f1 (entity level)

Examples are tokenized once by the driver (search/text_task.py); a trial only truncates to its
`max_length` and pads each batch to its longest sequence. `transformers` is imported by
`fit_text_model`, not here, so the hyperparameter table is cheap to import.
"""

import math

import torch
import torch.nn.functional as F

from spaces import Hyperparameter
from trainables import text_data
from trainables.checkpoints import latest_state, report_with_checkpoint
from trainables.loop import release_memory, run_epochs

HYPERPARAMETERS = {
    "lr": Hyperparameter(5e-5, float, 1e-7, 1.0),  # AdamW, for the pretrained encoder
    "batch_size": Hyperparameter(16, int, 1, 4096),
    "frozen_layers": Hyperparameter(0, int, 0, 49),  # embeddings, then transformer layers, from the bottom
    "head_lr_mult": Hyperparameter(10.0, float, 0.1, 1000.0),  # the new head (and title's cross-attention) learns faster
    "weight_decay": Hyperparameter(0.01, float, 0.0, 1.0),
    "warmup_ratio": Hyperparameter(0.1, float, 0.0, 0.5),  # share of the steps with a rising learning rate
    "max_length": Hyperparameter(128, int, 8, 512),  # tokens per sequence (sub-word pieces, with [CLS]/[SEP])
}
KINDS = ("lm", "title", "qa", "classify", "ner")
FORMATS = {"lm": "corpus", "title": "pairs", "qa": "pairs", "classify": "labelled", "ner": "conll"}
ENCODE_CAP = 512  # tokens kept at encoding; each trial truncates further to its max_length
EVAL_BATCH = 64
MASK_SHARE = 0.15  # BERT's masked-LM recipe
QA_SCALE = 20.0  # cosine similarity x 20: sentence-transformers' in-batch-negatives default


# ---- encoding (driver side, once per search) ----

def encode(kind: str, tokenizer, examples: list, labels: list[str]) -> dict:
    """Token ids for one split. `labels`: the class names (classify) or tags (ner) of the training
    split, in index order; an unseen one in another split is a clear error upstream."""
    tok = lambda texts, **kw: tokenizer(texts, truncation=True, max_length=ENCODE_CAP, **kw)["input_ids"]  # noqa: E731
    if kind == "lm":  # no [CLS]/[SEP] yet: lines are cut into max_length windows per trial
        return {"lines": [ids for ids in tokenizer(examples, add_special_tokens=False)["input_ids"] if ids]}
    if kind == "title":
        return {"source": tok([content for _, content in examples]), "target": [ids[1:] for ids in tok([t for t, _ in examples])]}
    if kind == "qa":
        return {"questions": tok([q for q, _ in examples]), "answers": tok([a for _, a in examples]),
                "question_text": [q for q, _ in examples], "answer_text": [a for _, a in examples]}
    index = {name: i for i, name in enumerate(labels)}
    if kind == "classify":
        return {"ids": tok([text for _, text in examples]), "labels": [index[label] for label, _ in examples]}
    encoded = tokenizer([tokens for tokens, _ in examples], is_split_into_words=True, truncation=True, max_length=ENCODE_CAP)
    out = {"ids": [], "token_labels": [], "first": [], "tags": []}
    for i, (tokens, tags) in enumerate(examples):
        first, token_labels, seen = [], [], set()
        for position, word in enumerate(encoded.word_ids(i)):
            if word is None or word in seen:
                token_labels.append(-100)  # specials and later sub-words: not scored
            else:
                seen.add(word)
                first.append(position)
                token_labels.append(index[tags[word]])
        out["ids"].append(encoded["input_ids"][i])
        out["token_labels"].append(token_labels)
        out["first"].append(first)  # a word past the cap has no entry: it counts as predicted O
        out["tags"].append(tags)
    return out


def size(kind: str, split: dict) -> int:
    """How many items a split holds: for lm its windows once cut for a max_length (what make_batch
    indexes), before that its lines; else its examples."""
    if kind == "lm":
        return len(split["windows"] if "windows" in split else split["lines"])
    return len(split["source" if kind == "title" else "questions" if kind == "qa" else "ids"])


# ---- batches ----

def clip(ids: list[int], length: int) -> list[int]:
    """At most `length` ids, keeping the final [SEP]."""
    return ids if len(ids) <= length else ids[:length - 1] + ids[-1:]


def padded(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), padded to the longest sequence of this batch (not to max_length)."""
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, (ids != pad).long()


def _pad_labels(rows: list[list[int]], width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r[:width], dtype=torch.long)
    return out


def lm_windows(lines: list[list[int]], length: int, special: dict) -> list[list[int]]:
    """Each line cut into windows of `length` tokens with [CLS] ... [SEP], so all of it is read."""
    step = length - 2
    return [[special["start"], *ids[i:i + step], special["end"]] for ids in lines for i in range(0, len(ids), step)]


def make_batch(kind: str, split: dict, idx: list[int], length: int, special: dict) -> dict:
    pad = special["pad"]
    if kind == "lm":
        ids, mask = padded([split["windows"][i] for i in idx], pad)
        return {"ids": ids, "mask": mask}
    if kind == "title":
        ids, mask = padded([clip(split["source"][i], length) for i in idx], pad)
        targets = [clip(split["target"][i], length) for i in idx]
        return {"ids": ids, "mask": mask, "labels": _pad_labels(targets, max(len(t) for t in targets))}
    if kind == "qa":
        q, q_mask = padded([clip(split["questions"][i], length) for i in idx], pad)
        a, a_mask = padded([clip(split["answers"][i], length) for i in idx], pad)
        return {"q": q, "q_mask": q_mask, "a": a, "a_mask": a_mask}
    ids, mask = padded([clip(split["ids"][i], length) for i in idx], pad)
    if kind == "classify":
        return {"ids": ids, "mask": mask, "labels": torch.tensor([split["labels"][i] for i in idx])}
    rows = [split["token_labels"][i][:length - 1] + [-100] if len(split["token_labels"][i]) > length
            else split["token_labels"][i] for i in idx]
    return {"ids": ids, "mask": mask, "labels": _pad_labels(rows, ids.shape[1])}


def index_batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---- losses (model, batch) -> (mean loss, how many it averages) ----

def mask_tokens(ids: torch.Tensor, mask: torch.Tensor, special: dict, vocab_size: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: 15% of the real tokens are predicted; of those 80% become [MASK], 10% a random
    token, 10% stay. Returns (input ids, labels with -100 where nothing is predicted)."""
    specials = (ids == special["start"]) | (ids == special["end"]) | (mask == 0)
    rand = torch.rand(ids.shape, generator=generator)
    chosen = (rand < MASK_SHARE) & ~specials
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    how = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (how < 0.8)] = special["mask"]
    swap = chosen & (how >= 0.8) & (how < 0.9)
    inputs[swap] = torch.randint(vocab_size, ids.shape, generator=generator)[swap]
    return inputs, labels


def mlm_loss(model, ids, mask, labels) -> tuple[torch.Tensor, int]:
    picked = labels != -100
    n = int(picked.sum())
    if n == 0:  # a batch of very short lines can draw no mask: nothing to learn from it
        return (model.get_input_embeddings().weight.sum() * 0.0), 0
    if hasattr(model, "cls"):  # BERT: score only the masked positions against the vocabulary (~6x less work)
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return F.cross_entropy(model.cls(hidden[picked]), labels[picked]), n
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss, n


def sentence_embeddings(encoder, ids, mask) -> torch.Tensor:
    """Mean of the last hidden states over real tokens, unit length (as all-MiniLM-L6-v2 was trained)."""
    hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1), dim=-1)


def task_loss(kind: str, model, batch: dict, special: dict, vocab_size: int) -> tuple[torch.Tensor, int]:
    if kind == "lm":
        device = batch["ids"].device
        inputs, labels = mask_tokens(batch["ids"].cpu(), batch["mask"].cpu(), special, vocab_size)
        return mlm_loss(model, inputs.to(device), batch["mask"], labels.to(device))
    if kind == "title":
        out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
        return out.loss, int((batch["labels"] != -100).sum())
    if kind == "qa":
        q = sentence_embeddings(model, batch["q"], batch["q_mask"])
        a = sentence_embeddings(model, batch["a"], batch["a_mask"])
        return F.cross_entropy(q @ a.T * QA_SCALE, torch.arange(len(q), device=q.device)), len(q)
    out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
    n = len(batch["ids"]) if kind == "classify" else int((batch["labels"] != -100).sum())
    return out.loss, n


# ---- evaluation (model, split) -> metrics, val_loss always ----

@torch.no_grad()
def evaluate(kind: str, model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
    model.eval()
    n = size(kind, split)
    if kind == "qa":
        return evaluate_retrieval(model, split, length, special, device)
    total, count, predictions = 0.0, 0, []
    masks = torch.Generator().manual_seed(1234)  # the same masked positions at every evaluation: comparable perplexities
    for idx in index_batches(n, EVAL_BATCH):
        batch = to_device(make_batch(kind, split, idx, length, special), device)
        if kind == "lm":
            inputs, targets = mask_tokens(batch["ids"].cpu(), batch["mask"].cpu(), special, vocab_size, masks)
            loss, k = mlm_loss(model, inputs.to(device), batch["mask"], targets.to(device))
        elif kind == "title":
            loss, k = task_loss(kind, model, batch, special, vocab_size)
        else:
            out = model(input_ids=batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
            loss, k = out.loss, (len(idx) if kind == "classify" else int((batch["labels"] != -100).sum()))
            predictions.extend(out.logits.argmax(-1).cpu().tolist())
        total += loss.item() * k
        count += k
    metrics = {"val_loss": total / max(count, 1)}
    if kind == "lm":
        metrics["val_perplexity"] = math.exp(min(metrics["val_loss"], 50.0))  # exp(50): beyond that it is only "diverged"
    elif kind == "classify":
        metrics.update(classification_scores(split["labels"], predictions, len(labels)))
    elif kind == "ner":
        # a word whose first piece was cut by max_length (clip puts [SEP] at length - 1) counts as O
        predicted = [[labels[p[pos]] if pos < length - 1 else "O" for pos in first] + ["O"] * (len(tags) - len(first))
                     for p, first, tags in zip(predictions, split["first"], split["tags"])]
        scores = text_data.entity_f1(split["tags"], predicted)
        metrics.update({"val_f1": scores["f1"], "val_precision": scores["precision"], "val_recall": scores["recall"]})
    return metrics


def classification_scores(gold: list[int], predicted: list[int], num_classes: int) -> dict:
    """Accuracy and macro-F1 (the mean F1 over the classes that occur in gold or predictions)."""
    correct = sum(g == p for g, p in zip(gold, predicted))
    f1s = []
    for c in range(num_classes):
        tp = sum(g == c and p == c for g, p in zip(gold, predicted))
        fp = sum(g != c and p == c for g, p in zip(gold, predicted))
        fn = sum(g == c and p != c for g, p in zip(gold, predicted))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"val_accuracy": correct / max(len(gold), 1), "val_macro_f1": sum(f1s) / max(len(f1s), 1)}


@torch.no_grad()
def evaluate_retrieval(model, split: dict, length: int, special: dict, device) -> dict:
    """Rank every distinct answer of the split for each distinct question: MRR and recall@1 (a
    question with several answers counts its best-ranked one), and the loss of each pair against
    all answers."""
    answers = sorted(set(split["answer_text"]))
    answer_row = {a: i for i, a in enumerate(answers)}
    first_ids = {}
    for text, ids in zip(split["answer_text"], split["answers"]):
        first_ids.setdefault(text, ids)

    def embed(seqs):
        chunks = []
        for i in range(0, len(seqs), EVAL_BATCH):
            ids, mask = padded([clip(s, length) for s in seqs[i:i + EVAL_BATCH]], special["pad"])
            chunks.append(sentence_embeddings(model, ids.to(device), mask.to(device)))
        return torch.cat(chunks)

    scores = embed(split["questions"]) @ embed([first_ids[a] for a in answers]).T  # pairs x distinct answers
    targets = torch.tensor([answer_row[a] for a in split["answer_text"]], device=scores.device)
    loss = F.cross_entropy(scores * QA_SCALE, targets).item()
    gold: dict[str, set] = {}
    row_of: dict[str, int] = {}
    for i, (q, a) in enumerate(zip(split["question_text"], split["answer_text"])):
        gold.setdefault(q, set()).add(answer_row[a])
        row_of.setdefault(q, i)
    ranks = []
    for q, golds in gold.items():
        row = scores[row_of[q]]
        best = max(row[g].item() for g in golds)
        ranks.append(1 + int((row > best).sum()))
    return {"val_loss": loss, "val_mrr": sum(1 / r for r in ranks) / len(ranks),
            "val_recall_at_1": sum(r == 1 for r in ranks) / len(ranks)}


# ---- one fit for trials and `search train` ----

def fit_text_model(config: dict, settings: dict, train: dict, evaluation: dict, report, epochs: int,
                   patience: int = 0, resume: dict | None = None):
    """Fine-tune the task's model on `train` for up to `epochs`, evaluating on `evaluation` after each
    epoch (see trainables.loop.run_epochs for `report` and `resume`). Returns the model."""
    from trainables import text_models  # transformers: imported only where a text model is built

    torch.set_num_threads(settings["threads"])
    torch.manual_seed(settings["seed"])
    kind, special, vocab_size = settings["kind"], settings["special"], settings["vocab_size"]
    device = torch.device(settings["device"])
    length = config["max_length"]
    if kind == "lm":  # windows depend on the trial's max_length
        train = {**train, "windows": lm_windows(train["lines"], length, special)}
        evaluation = {**evaluation, "windows": lm_windows(evaluation["lines"], length, special)}
    model = text_models.build_model(kind, settings["model"], vocab_size, len(settings["labels"]),
                                    settings.get("pretrained", True), special)
    extended = settings.get("extended_vocab", False)
    frozen = text_models.freeze(text_models.encoder_of(model, kind), config["frozen_layers"], extended)
    model.to(device)
    groups = text_models.param_groups(model, config["lr"], config["head_lr_mult"], config["weight_decay"],
                                      embeddings_as_head=kind == "lm" and extended)
    optimizer = torch.optim.AdamW(groups, lr=config["lr"])
    n = size(kind, train)
    steps = math.ceil(n / config["batch_size"])
    # the schedule spans the search's max epochs, so a model trained for fewer (search train, an
    # ASHA-stopped trial) saw the same learning rates epoch by epoch
    scheduler = text_models.warmup_schedule(optimizer, config["warmup_ratio"], steps * settings["schedule_epochs"])

    def train_batches(epoch):
        shuffle = torch.Generator().manual_seed(settings["seed"] * 100_003 + epoch)
        for idx in index_batches(n, config["batch_size"], shuffle):
            yield to_device(make_batch(kind, train, idx, length, special), device)

    run_epochs(model, optimizer, epochs=epochs, train_batches=train_batches,
               compute_loss=lambda net, batch: task_loss(kind, net, batch, special, vocab_size),
               evaluate=lambda net: evaluate(kind, net, evaluation, length, special, vocab_size, settings["labels"], device),
               report=report, frozen=frozen, seed=settings["seed"], patience=patience,
               min_delta=settings["min_delta"], resume=resume, scheduler=scheduler, amp=settings.get("amp", "off"))
    return model


def train_text_model(config: dict, settings: dict, data: dict, weights=None) -> None:
    """Ray Tune trainable for every text task: one trial on the train split, scored on validation,
    checkpointed every epoch and resumed from its latest checkpoint."""
    try:
        fit_text_model({**{k: p.default for k, p in HYPERPARAMETERS.items()}, **config}, settings,
                       data["train"], data["validation"], report_with_checkpoint, epochs=settings["max_epochs"],
                       patience=settings["patience"], resume=latest_state())
    finally:
        release_memory()
