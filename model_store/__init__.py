"""A versioned model store on the local filesystem: no Prefect, and Keras only to load.

`ModelStore(root).register(...)` publishes versions 1, 2, 3... of a model with its vocabulary and
manifest; `set_alias` points names such as "champion" at them; `load` verifies every checksum before
it hands back a `LoadedModel`. The layout on disk is in docs/design.md.
"""

from model_store._fs import sha256_of_file
from model_store.errors import (
    AliasInUseError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    ModelStoreError,
    NotFoundError,
)
from model_store.store import (
    FORMAT_VERSION,
    LATEST,
    LoadedModel,
    ModelStore,
    ModelVersion,
    collect_library_versions,
    validate_alias,
    validate_model_name,
)

__all__ = [
    "FORMAT_VERSION",
    "LATEST",
    "AliasInUseError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidNameError",
    "LoadedModel",
    "ModelStore",
    "ModelStoreError",
    "ModelVersion",
    "NotFoundError",
    "collect_library_versions",
    "sha256_of_file",
    "validate_alias",
    "validate_model_name",
]
