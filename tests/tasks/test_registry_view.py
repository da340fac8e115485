"""The model registry as the Prefect UI shows it (issue 24, item 8): which version is champion,
since when, why, and the history, written on every change by a training run or the command."""

from __future__ import annotations

from tasks.registry_view import (
    alias_changes,
    registry_description,
    registry_key,
    training_changes,
)


def test_the_key_is_what_prefect_accepts() -> None:
    assert registry_key("imdb-sentiment") == "imdb-sentiment-registry"
    assert registry_key("Reviews_EN.v2") == "reviews-en-v2-registry"


def test_a_rollback_is_a_change_of_its_own_with_the_version_it_left() -> None:
    before, after = {"champion": 2, "latest": 2}, {"champion": 1, "latest": 2}
    [change] = alias_changes("m", before, after, [], "v2 mislabels sarcasm", "ops", True)
    assert (change.change, change.alias, change.version, change.previous) == (
        "rolled-back",
        "champion",
        1,
        2,
    )
    removed, deleted = alias_changes("m", {"canary": 3}, {}, [3], "done", "ops")
    assert (removed.change, removed.version, removed.previous) == ("alias-removed", None, 3)
    assert (deleted.change, deleted.version) == ("deleted", 3)
    assert alias_changes("m", after, after, [], "nothing", "ops") == []


def test_the_description_says_which_champion_since_when_and_why() -> None:
    trained = training_changes("m", 2, 0.91, True, "better than v1", 1, "training run x")
    rows = [change.row() for change in reversed(trained)]
    assert rows[0]["change"] == "promoted" and rows[1]["change"] == "registered"
    text = registry_description({"champion": 2}, rows)
    assert text.startswith(f"champion: v2 since {rows[0]['when']} (promoted by training run x")
    assert "better than v1" in text
    [rollback] = alias_changes("m", {"champion": 2}, {"champion": 1}, [], "sarcasm", "ops", True)
    rows = [rollback.row(), *rows]
    assert registry_description({"champion": 1}, rows).startswith(
        f"champion: v1 since {rollback.row()['when']} (rolled-back by ops: sarcasm)"
    )
    assert registry_description({}, rows).startswith("no champion")
    assert "since before this view" in registry_description({"champion": 7}, rows)
