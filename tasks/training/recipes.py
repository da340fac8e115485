"""Named training recipes: `review-scoring train --recipe best`, listed by `review-scoring recipes`.

A recipe is the settings it changes from the Keras tutorial's defaults (TrainingData's and
TrainingConfig's fields); a setting left at its default takes the recipe's value, one given
otherwise is kept. The figures are bench/bench_training.py's on IMDB (README, "Training").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RECIPES", "Recipe", "RecipeName", "fill_recipe"]

RecipeName = Literal["tutorial", "best"]


@dataclass(frozen=True)
class Recipe:
    """A named set of training settings, what it is, and what it measured."""

    name: str
    summary: str
    measured: str
    settings: Mapping[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "tutorial",
            "the Keras tutorial: top 10,000 words, 250 tokens, Embedding(32) -> LSTM(32) -> "
            "Dense(1, sigmoid), 10 epochs",
            "IMDB test accuracy 0.8686 (validation 0.8741), 127 s to train on 2 cores",
        ),
        Recipe(
            "best",
            "a bag of unigrams and hashed bigrams weighted by their naive-Bayes ratios (as NBSVM), "
            "50,000 words, 1,000 tokens, one hidden layer of 16; stops when validation loss rises",
            "IMDB test accuracy 0.9141 (validation 0.9218), 54 s to train on 2 cores",
            {
                "num_words": 50_000,
                "maxlen": 1_000,
                "architecture": "ngrams",
                "hash_buckets": 1_048_576,
                "units": 16,
                "ngram_weighting": "nb",
                "dropout_rate": 0.5,
                "early_stopping_patience": 1,
            },
        ),
    )
}


def fill_recipe(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the named recipe's settings in place of those absent or left at `defaults`
    (field name: default); an unknown recipe is left for validation to refuse."""
    recipe = RECIPES.get(str(values.get("recipe", "tutorial")))
    filled = dict(values)
    for name, value in (recipe.settings if recipe else {}).items():
        if name not in filled or filled[name] == defaults.get(name):
            filled[name] = value
    return filled
