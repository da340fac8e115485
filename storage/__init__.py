"""The project's bottom layer: where files live (a local folder or object storage, behind one
`Location`), how a write becomes visible whole, the temporaries and their sweeper, the fault
points crash tests use, and the error model every layer raises. No Prefect, no Keras.

- `locate` (here): the Location any path parameter names
- `location`: `Location`, the interface every kind of storage keeps
- `local`: a path on this machine's disk
- `objects`: an object or prefix in S3 or GCS (fsspec)
- `files`: hashing, durable and atomic local writes, locks, temporary files and their sweeper
- `faults`: named points where a crash test kills the process
- `errors`: `UserError` and its family
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from storage.errors import (
    BadDataError,
    InvalidParameterError,
    MissingPathError,
    NotAFolderError,
    StorageAccessError,
    StorageCredentialsError,
    UserError,
)
from storage.faults import fault_point
from storage.files import sha256_of_file
from storage.local import LocalLocation
from storage.location import Location, is_glob, is_uri, refuse_credentials_in

__all__ = [
    "BadDataError",
    "InvalidParameterError",
    "LocalLocation",
    "Location",
    "MissingPathError",
    "NotAFolderError",
    "StorageAccessError",
    "StorageCredentialsError",
    "UserError",
    "fault_point",
    "is_glob",
    "is_uri",
    "locate",
    "sha256_of_file",
]


def locate(target: str | os.PathLike[str] | Location, parameter: str = "path") -> Location:
    """The location a path parameter names: a local path (`file://` too), or an object storage
    URI. Raises InvalidParameterError naming `parameter` for an empty path, a URI with
    credentials in it, or a protocol that is not supported."""
    if isinstance(target, Location):
        return target
    text = os.fspath(target)
    if not text:
        raise InvalidParameterError(f"{parameter} is empty")
    if text.startswith("file://"):
        text = urlsplit(text).path
    if not is_uri(text):
        return LocalLocation(Path(text).absolute())
    refuse_credentials_in(text, parameter)
    # Imported here: fsspec and its filesystems are needed only for object storage.
    from storage.objects import object_location

    return object_location(text, parameter)
