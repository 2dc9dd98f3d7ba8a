"""The events `python run.py stream` publishes for a dataset's rows (client.streaming.build_events)."""

from __future__ import annotations

import pytest

from client.streaming import StreamRefused, build_events


def test_each_row_becomes_an_event_with_its_label_inline():
    [[first], [second]] = build_events([({"a": 1.0, "b": 2}, True), ({"a": 3.0, "b": 4}, False)], "s")
    assert (first.stream, first.values) == ("s", {"a": 1.0, "b": 2, "label": True})
    assert second.values["label"] is False and first.entity_key != second.entity_key


@pytest.mark.parametrize("column", ["a\tb", "line1\nline2", "esc\x1b[31m", "nul\x00"])
def test_a_column_name_no_event_may_carry_is_refused_naming_the_row(column):
    rows = [({"a": 1.0}, True), ({column: 1.0}, True)]
    with pytest.raises(StreamRefused) as info:
        list(build_events(rows, "s"))
    assert info.value.field == "row 1" and "control characters" in str(info.value)
