"""search/layout.py: the output folder's names, and the atomic write every file of it goes through."""

from pathlib import Path

import pytest

from search.layout import Layout, write_atomic


def test_layout_names_every_file_of_a_search(tmp_path):
    layout = Layout(tmp_path)
    assert layout.results == tmp_path / "results.csv" and layout.best == tmp_path / "best.yaml"
    assert layout.options == tmp_path / "search.yaml" and layout.space == tmp_path / "space.yaml"
    assert layout.trials == tmp_path / "trials" and layout.final() == tmp_path / "final"
    assert set(layout.search_files()) == {layout.results, layout.best, layout.options, layout.space}
    assert Layout(Path("x")).final("final-scratch") == Path("x/final-scratch")


def test_write_atomic(tmp_path):
    path = tmp_path / "new" / "dir" / "results.csv"
    write_atomic(path, "a,b\n1,2\n")
    assert path.read_text(encoding="utf-8") == "a,b\n1,2\n"
    write_atomic(path, "überschrieben\n")  # replaces, in UTF-8
    assert path.read_bytes() == "überschrieben\n".encode()
    assert [p.name for p in path.parent.iterdir()] == ["results.csv"]  # no temporary file left behind


def test_write_atomic_failure_leaves_nothing(tmp_path):
    path = tmp_path / "best.yaml"
    write_atomic(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half \udc80 written")  # a lone surrogate cannot be encoded
    assert path.read_text() == "old\n"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["best.yaml"]
