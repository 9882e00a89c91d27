"""search/report/confusion.py: the report's confusion-matrix section, drawn from final/metrics.json
when `search train` wrote one there (20 classes included), absent otherwise."""

import json

from PIL import Image

from search.report.confusion import confusion_html


def test_the_section_is_drawn_from_final_metrics_and_absent_without(tmp_path):
    assert confusion_html(tmp_path) == ""
    classes = [f"class {i}" for i in range(20)]
    rows = [[10 if i == j else (i + j) % 3 for j in range(20)] for i in range(20)]
    (tmp_path / "final").mkdir()
    metrics = {"test_accuracy": 0.75, "test_confusion_matrix": {"classes": classes, "rows": rows}}
    (tmp_path / "final" / "metrics.json").write_text(json.dumps(metrics))
    section = confusion_html(tmp_path)
    assert section.startswith("<h2>Confusion matrix</h2>") and "test accuracy 0.7500" in section
    assert "data:image/png;base64," in section
    width, height = Image.open(tmp_path / "report" / "confusion.png").size
    assert width >= 1000 and height >= 900  # 20 classes get room: about 0.45 inch a class
