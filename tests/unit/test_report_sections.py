"""RELIABILITY.md's sections are replaced one at a time: a benchmark run alone keeps the others."""

from __future__ import annotations

import doctest

from benchmarks import report
from benchmarks.report import replace_section


def test_a_middle_section_is_replaced_in_place_and_the_others_kept(tmp_path):
    path = tmp_path / "RELIABILITY.md"
    for title in ("Chaos", "Sustained load", "Known"):
        replace_section(path, title, f"{title} body, first run.\n\n| a | b |\n|---|---|")
    replace_section(path, "Sustained load", "second run")
    text = path.read_text()
    assert text.startswith(report.RELIABILITY_HEADER)
    assert text.count("## ") == 3
    assert text.index("## Chaos") < text.index("## Sustained load") < text.index("## Known")
    assert "second run" in text and "Sustained load body" not in text
    assert "Chaos body, first run.\n\n| a | b |\n|---|---|\n" in text and "Known body, first run." in text


def test_a_heading_that_only_starts_like_the_title_is_not_replaced(tmp_path):
    path = tmp_path / "R.md"
    path.write_text("# R\n\n## Chaos while scoring\n\nkeep me\n")
    replace_section(path, "Chaos", "new")
    assert path.read_text() == "# R\n\n## Chaos while scoring\n\nkeep me\n\n## Chaos\n\nnew\n"


def test_the_docstring_example_runs():
    assert doctest.testmod(report).failed == 0
