"""A versioned model store in a local folder or object storage: no Prefect, Keras only to check
and load.

`ModelStore(root).register(...)` publishes versions 1, 2, 3... of a model with its vocabulary and
manifest; `set_alias` points names such as "champion" at them and `promote` does so when the
promotion rule says so; `load` verifies every checksum before it hands back a `LoadedModel`.
The layout on disk is in docs/design.md.
"""

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
from model_store.names import CHAMPION, LATEST, validate_alias, validate_model_name
from model_store.promotion import (
    PROMOTION_METRIC,
    PromotionDecision,
    PromotionMode,
    decide_promotion,
)
from model_store.store import ModelStore

__all__ = [
    "CHAMPION",
    "FORMAT_VERSION",
    "LATEST",
    "PROMOTION_METRIC",
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
    "validate_alias",
    "validate_model_name",
]
