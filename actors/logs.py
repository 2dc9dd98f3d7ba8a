"""structlog configured once per process: JSON lines with the bound context; while a
worker handles a message, every line it logs carries the message's chain.

>>> import io, json, structlog
>>> from messages.training import TrainModels
>>> out = io.StringIO()
>>> configure_logging(stream=out)
>>> command = TrainModels(config_toml='model = "m"')
>>> bind_message(command)
>>> structlog.get_logger().info("training run started")
>>> line = json.loads(out.getvalue())
>>> (line["correlation_id"], line["causation_id"]) == (command.correlation_id, command.msg_id)
True
>>> unbind_message()
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", stream=None) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )


def bind_message(message) -> None:
    """Log lines from here on (in this task and tasks it starts) carry the message's chain:
    its ``correlation_id``, and its ``msg_id`` as the ``causation_id`` of what follows."""
    structlog.contextvars.bind_contextvars(correlation_id=message.correlation_id, causation_id=message.msg_id)


def unbind_message() -> None:
    structlog.contextvars.unbind_contextvars("correlation_id", "causation_id")


def bound_chain(correlation_id: str = "", causation_id: str = ""):
    """A context in which log lines carry the chain a caller passed along with a request
    (nothing is bound for an empty ``correlation_id``).

    >>> with bound_chain("req-1"):
    ...     current_chain()
    {'correlation_id': 'req-1', 'causation_id': ''}
    >>> current_chain()
    {}
    """
    if not correlation_id:
        import contextlib

        return contextlib.nullcontext()
    return structlog.contextvars.bound_contextvars(correlation_id=correlation_id, causation_id=causation_id)


def current_chain() -> dict[str, str]:
    """The chain bound in this context, as keyword arguments for a message it causes
    (``{}`` when none is bound)."""
    bound = structlog.contextvars.get_contextvars()
    if not bound.get("correlation_id"):
        return {}
    return {"correlation_id": bound["correlation_id"], "causation_id": bound.get("causation_id", "")}
