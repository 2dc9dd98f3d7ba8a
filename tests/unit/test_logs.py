"""Log lines carry the chain of the message being handled."""

import doctest
import io
import json

import structlog

import actors.logs
from actors.logs import configure_logging, unbind_message
from actors.partition_worker import PartitionWorker
from messages.codec import encode
from messages.ingestion import RawIngested
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings


def test_doctests_pass():
    assert doctest.testmod(actors.logs).failed == 0


def test_a_worker_logs_with_the_chain_of_the_message_it_took_and_not_after_a_bad_one():
    out = io.StringIO()
    configure_logging(stream=out)
    worker = PartitionWorker(Settings(), "root.prepare", "raw.ingested")
    event = RawIngested(dataset="d", batch_id="b1", checksum="0" * 64, n_rows=1, n_rejected=0, correlation_id="c" * 32)
    effects = BatchEffects()
    try:
        assert worker.expect(Record(0, b"k", encode(event)), effects, RawIngested) == event
        structlog.get_logger().info("batch prepared")
        unbind_message()                                        # what a step does before its next batch
        assert worker.expect(Record(1, b"k", b"not a message"), effects, RawIngested) is None
        structlog.get_logger().info("after a bad record")
    finally:
        unbind_message()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["correlation_id"], first["causation_id"]) == ("c" * 32, event.msg_id)
    assert "correlation_id" not in second and len(effects.dead_letters) == 1
