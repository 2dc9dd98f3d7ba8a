"""The one shape of a refusal that names its culprit: a field path and a reason a user can act on.

Examples
--------
>>> err = FieldError("model.params.lr", "must be > 0; got -1.0")
>>> str(err), err.field, err.reason
('model.params.lr: must be > 0; got -1.0', 'model.params.lr', 'must be > 0; got -1.0')
>>> import pickle                       # it crosses process boundaries (Ray) intact
>>> pickle.loads(pickle.dumps(err)).field
'model.params.lr'
"""

from __future__ import annotations


class FieldError(ValueError):
    """Base of the errors that name a field and a reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason

    def __reduce__(self):
        return type(self), (self.field, self.reason)


def decode_toml(text, into: type, error: type[FieldError], max_bytes: int, where):
    """``text`` (TOML, at most ``max_bytes``) decoded into ``into``; anything wrong raised as
    ``error(field, reason)``, the field of a validation error found by ``where(message)``."""
    import msgspec

    if len(text) > max_bytes:
        raise error("config", f"{len(text)} bytes exceeds the limit of {max_bytes}")
    try:
        return msgspec.toml.decode(text, type=into)
    except msgspec.ValidationError as exc:
        raise error(*where(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise error("config", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise error("config", "not UTF-8 text") from None
