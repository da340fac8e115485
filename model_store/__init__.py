"""A versioned model store on the local filesystem: no Prefect, and Keras only to check and load.

`ModelStore(root).register(...)` publishes versions 1, 2, 3... of a model with its vocabulary and
manifest; `set_alias` points names such as "champion" at them and `promote` does so when the
promotion rule says so; `load` verifies every checksum before it hands back a `LoadedModel`.
The layout on disk is in docs/design.md.
"""

from model_store._fs import sha256_of_file
from model_store.entities import LoadedModel, ModelVersion
from model_store.errors import (
    AliasInUseError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    ModelStoreError,
    NotFoundError,
)
from model_store.keras_model import (
    check_keras_archive,
    check_loads_in_safe_mode,
    collect_library_versions,
)
from model_store.manifest import FORMAT_VERSION
from model_store.names import LATEST, validate_alias, validate_model_name
from model_store.promotion import PromotionDecision, PromotionMode, decide_promotion
from model_store.store import ModelStore

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
    "PromotionDecision",
    "PromotionMode",
    "check_keras_archive",
    "check_loads_in_safe_mode",
    "collect_library_versions",
    "decide_promotion",
    "sha256_of_file",
    "validate_alias",
    "validate_model_name",
]
