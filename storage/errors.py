"""The project's one error model: what a user can fix, against everything else.

A `UserError` is raised where the code knows the user's mistake (a bad parameter, a missing
path, a refused credential, unusable data, an unknown model): its message is one line that says
what and where, the CLI prints it as `error: ...` and exits 1, and a run ends Failed with it as
the state's message, with no traceback (tasks/failures.py). Any other exception is a bug and keeps
its traceback everywhere. The family sits at the bottom layer so that every layer can raise it.
Each class also derives from the builtin a caller would catch for that kind of failure.
"""

from __future__ import annotations

__all__ = [
    "BadDataError",
    "InvalidParameterError",
    "MissingPathError",
    "NotAFolderError",
    "StorageAccessError",
    "StorageCredentialsError",
    "UserError",
]


class UserError(Exception):
    """Something the user can fix; the message is one line that says what and where."""


class InvalidParameterError(UserError, ValueError):
    """A parameter or setting that cannot be used as given; the message names it."""


class MissingPathError(UserError, FileNotFoundError):
    """A path a parameter names is not there."""


class NotAFolderError(UserError, NotADirectoryError):
    """A path a parameter names must be a folder and is not."""


class BadDataError(UserError, ValueError):
    """Input data that cannot be used: the message names the file, the row or the column."""


class StorageAccessError(UserError, PermissionError):
    """A place the run must write in or read from refuses it (permissions, a full disk)."""


class StorageCredentialsError(StorageAccessError):
    """Object storage could not be reached for want of credentials; the message says which to
    set (and never holds any)."""
