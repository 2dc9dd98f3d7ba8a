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
