"""The promotion rule: whether a new version takes an alias ("champion") from its holder.

`ModelStore.promote` applies it under the model's lock, so two trainings that finish together
cannot both compare against the same holder and leave the worse model in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from model_store.errors import InvalidInputError
from model_store.names import CHAMPION

__all__ = ["PROMOTION_METRIC", "PromotionDecision", "PromotionMode", "decide_promotion"]

PromotionMode = Literal["auto", "always", "never"]
# The manifest metric `auto` compares: higher is better.
PROMOTION_METRIC = "test_accuracy"


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version becomes champion, and why."""

    promote: bool
    reason: str
    previous_champion: int | None


def decide_promotion(
    mode: PromotionMode,
    new_accuracy: float | None,
    champion_version: int | None,
    champion_accuracy: float | None,
    *,
    alias: str = CHAMPION,
    metric: str = PROMOTION_METRIC,
) -> PromotionDecision:
    """`auto` promotes when the new test accuracy is at least the champion's (or there is none).

    `always` and `never` do what they say. `alias` and `metric` only change the wording.
    Raises InvalidInputError (a ValueError) for any other mode.
    """
    if mode == "always":
        return PromotionDecision(True, "promotion mode is 'always'", champion_version)
    if mode == "never":
        return PromotionDecision(False, "promotion mode is 'never'", champion_version)
    if mode != "auto":
        raise InvalidInputError(f"promote must be 'auto', 'always' or 'never', got {mode!r}")
    metric_words = metric.replace("_", " ")
    if champion_version is None:
        return PromotionDecision(True, f"there is no {alias} yet", None)
    if champion_accuracy is None:
        return PromotionDecision(
            True, f"{alias} v{champion_version} has no {metric_words} to compare", champion_version
        )
    if new_accuracy is None:
        return PromotionDecision(
            False,
            f"the new version has no {metric_words} to compare, {alias} kept",
            champion_version,
        )
    comparison = (
        f"{metric_words} {new_accuracy:.4f} vs {alias} v{champion_version}'s "
        f"{champion_accuracy:.4f}"
    )
    if new_accuracy >= champion_accuracy:
        return PromotionDecision(True, f"{comparison}: at least as good", champion_version)
    return PromotionDecision(False, f"{comparison}: worse, {alias} kept", champion_version)


def metric_value(manifest: Mapping[str, Any], metric: str) -> float | None:
    """The number a manifest records for `metric`, or None when it has none."""
    value = (manifest.get("metrics") or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
