"""Test scores broken down for metrics.json: per class (image and text classification) precision,
recall, F1, support and the confusion matrix; per entity type (ner) the same counted over whole
entities, as trainables.text_data.entity_f1 counts them. Plain Python, no torch.
"""

from trainables.text_data import entity_spans


def prf(hits: int, n_predicted: int, n_gold: int) -> dict:
    precision = hits / n_predicted if n_predicted else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}


def per_class(gold: list[int], predicted: list[int], classes: list[str]) -> dict:
    """{"test_per_class": {class: precision, recall, f1, support}, "test_confusion_matrix": {"classes",
    "rows"}}: rows[i][j] counts test examples of class i predicted as class j."""
    n = len(classes)
    rows = [[0] * n for _ in range(n)]
    for g, p in zip(gold, predicted):
        rows[g][p] += 1
    scores = {name: prf(rows[i][i], sum(rows[k][i] for k in range(n)), sum(rows[i])) for i, name in enumerate(classes)}
    return {"test_per_class": scores, "test_confusion_matrix": {"classes": list(classes), "rows": rows}}


def per_entity_type(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """{"test_per_type": {type: precision, recall, f1, support}}, entities matched on span and type."""
    counts: dict[str, list[int]] = {}  # type -> [hits, predicted, gold]
    for g, p in zip(gold, predicted):
        g, p = entity_spans(g), entity_spans(p)
        for kind, *_ in g | p:
            counts.setdefault(kind, [0, 0, 0])
        for kind, *_ in g & p:
            counts[kind][0] += 1
        for kind, *_ in p:
            counts[kind][1] += 1
        for kind, *_ in g:
            counts[kind][2] += 1
    return {"test_per_type": {kind: prf(*counts[kind]) for kind in sorted(counts)}}
