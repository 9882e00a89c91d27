"""answer retrieval (bi-encoder, in-batch negatives), from `question<TAB>answer` lines

One shared encoder embeds questions and answers (mean of the last hidden states, unit length, as
all-MiniLM-L6-v2 was trained); each question's answer must outscore the batch's other answers.
Validation ranks every distinct answer for each distinct question: MRR and recall@1.
`search predict` ranks an answer file (--answers) for each question; the encoder exports (embeddings).
"""

import torch
import torch.nn.functional as F

from trainables import text_models, text_predict
from trainables.basics import UserError
from trainables.text_batches import EVAL_BATCH, clip, padded, token_ids
from trainables.text_task import TextKind, carve_groups, make_task, pair_texts

QA_SCALE = 20.0  # cosine similarity x 20: sentence-transformers' in-batch-negatives default


def encode(tokenizer, examples: list, labels: list[str]) -> dict:
    return {
        "questions": token_ids(tokenizer, [q for q, _ in examples]),
        "answers": token_ids(tokenizer, [a for _, a in examples]),
        "question_text": [q for q, _ in examples],
        "answer_text": [a for _, a in examples],
    }


def size(split: dict) -> int:
    return len(split["questions"])


def questions_and_answers(split: dict) -> list:
    return split["questions"] + split["answers"]


def pair_lengths(split: dict) -> list[int]:
    return [max(len(q), len(a)) for q, a in zip(split["questions"], split["answers"])]


def make_batch(split: dict, idx: list[int], length: int, special: dict) -> dict:
    q, q_mask = padded([clip(split["questions"][i], length) for i in idx], special["pad"])
    a, a_mask = padded([clip(split["answers"][i], length) for i in idx], special["pad"])
    return {"q": q, "q_mask": q_mask, "a": a, "a_mask": a_mask}


def sentence_embeddings(encoder, ids, mask) -> torch.Tensor:
    """Mean of the last hidden states over real tokens, unit length (as all-MiniLM-L6-v2 was trained)."""
    hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1), dim=-1)


def loss(model, batch: dict, special: dict, vocab_size: int) -> tuple[torch.Tensor, int]:
    q = sentence_embeddings(model, batch["q"], batch["q_mask"])
    a = sentence_embeddings(model, batch["a"], batch["a_mask"])
    return F.cross_entropy(q @ a.T * QA_SCALE, torch.arange(len(q), device=q.device)), len(q)


@torch.no_grad()
def evaluate(model, split: dict, length: int, special: dict, vocab_size: int, labels: list[str], device) -> dict:
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
            ids, mask = padded([clip(s, length) for s in seqs[i : i + EVAL_BATCH]], special["pad"])
            chunks.append(sentence_embeddings(model, ids.to(device), mask.to(device)))
        return torch.cat(chunks)

    scores = embed(split["questions"]) @ embed([first_ids[a] for a in answers]).T  # pairs x distinct answers
    targets = torch.tensor([answer_row[a] for a in split["answer_text"]], device=scores.device)
    val_loss = F.cross_entropy(scores * QA_SCALE, targets).item()
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
    return {
        "val_loss": val_loss,
        "val_mrr": sum(1 / r for r in ranks) / len(ranks),
        "val_recall_at_1": sum(r == 1 for r in ranks) / len(ranks),
    }


AUTO_CLASS = "AutoModel"
TOP_ANSWERS = 3  # answers shown per question unless --top says otherwise


@torch.no_grad()
def predict(folder, info: dict, inputs: list[str], options: dict, device) -> list[dict]:
    """For each question (a line, or a `question<TAB>answer` line's question) the --answers file's
    best answers (its lines, or its lines' answer column), with their cosine similarity."""
    if not options.get("answers"):
        raise UserError("qa predicts from a list of candidate answers: give --answers FILE (one answer a line)")
    questions = [line.split("\t", 1)[0].strip() for line in text_predict.read_lines(inputs)]
    answers = list(dict.fromkeys(text_predict.last_column(a) for a in text_predict.read_lines([options["answers"]])))
    model, tokenizer = text_predict.load(folder, info, AUTO_CLASS, device)
    length, pad = info["preprocessing"]["max_length"], tokenizer.pad_token_id

    def embed(texts):
        ids = token_ids(tokenizer, texts)
        return torch.cat(
            [
                sentence_embeddings(model, x, m)
                for _, x, m in text_predict.batches(ids, length, pad, device, options.get("batch_size"))
            ]
        )

    scores = (embed(questions) @ embed(answers).T).cpu()
    top = min(options.get("top") or TOP_ANSWERS, len(answers))
    rows = []
    for question, row in zip(questions, scores):
        values, order = row.topk(top)
        for rank, (score, j) in enumerate(zip(values.tolist(), order.tolist()), 1):
            rows.append({"question": question, "rank": rank, "answer": answers[j], "score": score})
    return rows


def build_model(name: str, vocab_size: int, num_labels: int, pretrained: bool, special: dict):
    """The bare encoder: a bi-encoder has no head."""
    return text_models.fit_vocabulary(text_models.pretrained_model("AutoModel", name, pretrained), vocab_size)


KIND = TextKind(
    format="pairs",
    texts=pair_texts,
    encode=encode,
    size=size,
    make_batch=make_batch,
    loss=loss,
    evaluate=evaluate,
    build_model=build_model,
    carve=carve_groups,
    unique_examples=True,
    encoder_inputs=questions_and_answers,
    item_lengths=pair_lengths,
    predict=predict,
    export_graph=text_predict.text_export(AUTO_CLASS, sentence_embeddings, "embeddings"),
)
TASK = make_task(KIND, name="qa", summary=__doc__.splitlines()[0], metric="val_mrr", mode="max")
