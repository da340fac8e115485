"""The store's exceptions: one base class, one subclass per kind of failure."""

from __future__ import annotations

from collections.abc import Sequence

from storage.errors import UserError

__all__ = [
    "AliasInUseError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "ModelStoreError",
    "NotFoundError",
]


class ModelStoreError(UserError):
    """Base class of every error the model store raises; the message is one line."""


class InvalidNameError(ModelStoreError, ValueError):
    """A model name, alias, version reference or file name that the store refuses."""


class InvalidInputError(ModelStoreError, ValueError):
    """An argument the store cannot store: a non-JSON vocabulary, an unreadable extra file..."""


class NotFoundError(ModelStoreError, LookupError):
    """An unknown or deleted model, version or alias; the message lists what exists."""


class AliasInUseError(ModelStoreError):
    """A version cannot be deleted while an alias points at it."""


class IntegrityError(ModelStoreError):
    """Files of a published version differ from its manifest, or are missing or unexpected."""

    def __init__(self, message: str, problems: Sequence[str] = (), files: Sequence[str] = ()):
        super().__init__(message)
        self.problems: list[str] = list(problems) or [message]
        # The file names involved, so callers (and tests) need not parse the message.
        self.files: list[str] = list(files)
