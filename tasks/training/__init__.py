"""Train a review classifier and register it: load, pad, train, evaluate, register, promote.

One module per concern, all free of Prefect except `tasks.training.tasks`, which holds the
`@task` wrappers the training flow calls:

- `data`: labeled reviews from the Keras download, an imdb.npz or Parquet, as ids; padding
- `model`: the recipe (`TrainingConfig`), `build_model`, `train_model`, the one seeding function
- `evaluation`: test metrics, the curves, the report the UI shows
- `registry`: the store checked first, the version registered, the promotion rule applied
"""

from tasks.training.data import (
    LabeledData,
    PaddedData,
    load_labeled_data,
    load_parquet_reviews,
    pad_data,
)
from tasks.training.evaluation import evaluate_model, plot_curves
from tasks.training.model import (
    ARCHITECTURES,
    TrainedModel,
    TrainingConfig,
    build_model,
    set_seed,
    train_model,
)
from tasks.training.registry import RegisteredVersion, check_destination, register_version

__all__ = [
    "ARCHITECTURES",
    "LabeledData",
    "PaddedData",
    "RegisteredVersion",
    "TrainedModel",
    "TrainingConfig",
    "build_model",
    "check_destination",
    "evaluate_model",
    "load_labeled_data",
    "load_parquet_reviews",
    "pad_data",
    "plot_curves",
    "register_version",
    "set_seed",
    "train_model",
]
