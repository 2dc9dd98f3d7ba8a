"""Typed errors the client raises."""


class ClientError(RuntimeError):
    """Base of the client's errors."""


class ClusterNotRunning(ClientError):
    """No running cluster was found for these settings."""


class Refused(ClientError):
    """A request refused before anything was done; ``field`` names what is wrong and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class SubmitRefused(Refused):
    """A message was refused before publishing."""
