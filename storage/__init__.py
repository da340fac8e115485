"""The project's bottom layer: where files live (a local folder or object storage, behind one
`Location`), how a write becomes visible whole, the temporaries and their sweeper, the fault
points crash tests use, and the error model every layer raises. No Prefect, no Keras.

- `location`: `Location`, a local path, and `Location.of` for any path parameter
- `objects`: an object or prefix in S3 or GCS (fsspec)
- `files`: hashing, durable and atomic local writes, locks, temporary files and their sweeper
- `faults`: named points where a crash test kills the process
- `errors`: `UserError` and its family
"""

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
from storage.location import LocalLocation, Location, is_glob, is_uri

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
    "sha256_of_file",
]
