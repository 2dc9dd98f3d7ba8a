"""``start_ray`` tries once more when Ray gave up on its own start (its raylet not registered
with the GCS within Ray's fixed 30 s, seen when other clusters started beside it), and
raises any other failure at once. The start itself is replaced here: starting a real Ray
head is what the e2e tests do."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import embedded
from storage.embedded import RAY_STARTUP_TIMED_OUT, EmbeddedError, ServiceRecord

STARTED = ServiceRecord("ray", "127.0.0.1:1", True, [1], "/tmp/nowhere")


def failing_then_started(failures: list[str]):
    calls = []

    def start_once(state, token_path, num_cpus):
        calls.append(state)
        if len(calls) <= len(failures):
            raise EmbeddedError(failures[len(calls) - 1])
        return STARTED

    return start_once, calls


def test_a_start_that_ray_gave_up_on_is_tried_again(monkeypatch):
    start_once, calls = failing_then_started([f"ray start failed (1): The current node {RAY_STARTUP_TIMED_OUT}."])
    monkeypatch.setattr(embedded, "_start_ray_once", start_once)
    assert embedded.start_ray(Path("/tmp/s"), Path("/tmp/t")) is STARTED
    assert len(calls) == 2


def test_it_gives_up_after_the_last_attempt_with_ray_s_reason(monkeypatch):
    reason = f"ray start failed (1): The current node {RAY_STARTUP_TIMED_OUT}."
    start_once, calls = failing_then_started([reason, reason])
    monkeypatch.setattr(embedded, "_start_ray_once", start_once)
    with pytest.raises(EmbeddedError, match=RAY_STARTUP_TIMED_OUT):
        embedded.start_ray(Path("/tmp/s"), Path("/tmp/t"))
    assert len(calls) == 2


def test_any_other_failure_is_raised_at_once(monkeypatch):
    start_once, calls = failing_then_started(["ray start failed (1): port 6379 is already in use"])
    monkeypatch.setattr(embedded, "_start_ray_once", start_once)
    with pytest.raises(EmbeddedError, match="already in use"):
        embedded.start_ray(Path("/tmp/s"), Path("/tmp/t"))
    assert len(calls) == 1
