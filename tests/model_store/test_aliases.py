"""Aliases on a real store: moves, rollback, removal, repair, and promotion under the lock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from model_store import (
    IntegrityError,
    InvalidInputError,
    ModelStore,
    NotFoundError,
    PromotionDecision,
    decide_promotion,
)
from testkit.store import (
    MODEL_NAME,
    finish,
    flip_last_byte,
    promote_concurrently,
    register,
    start_child,
    wait_for_files,
)

# The fixtures every test_model_store_* file shares.

ALIAS_MOVERS = 8
MOVES_PER_ALIAS_MOVER = 25
PROMOTION_ACCURACIES = (0.80, 0.86, 0.83, 0.90, 0.84, 0.88)


# ---------------------------------------------------------------------- moves and rollback


def test_rollback_walks_back_the_alias_history(three_versions: ModelStore) -> None:
    store = three_versions
    for version in (1, 2, 3):
        assert store.set_alias(MODEL_NAME, "champion", version) == version
    assert store.set_alias(MODEL_NAME, "champion", 3) == 3  # unchanged: not a move
    assert store.alias_history(MODEL_NAME, "champion") == [1, 2, 3]

    assert store.rollback(MODEL_NAME, "champion") == 2
    assert store.aliases(MODEL_NAME) == {"champion": 2}
    assert store.rollback(MODEL_NAME, "champion") == 1
    assert store.alias_history(MODEL_NAME, "champion") == [1]
    with pytest.raises(NotFoundError, match="no earlier version to roll back to"):
        store.rollback(MODEL_NAME, "champion")
    assert store.aliases(MODEL_NAME) == {"champion": 1}
    with pytest.raises(NotFoundError, match=r"unknown alias 'staging'.*champion -> 1"):
        store.rollback(MODEL_NAME, "staging")


def test_rollback_skips_deleted_versions(three_versions: ModelStore) -> None:
    store = three_versions
    for version in (1, 2, 3):
        store.set_alias(MODEL_NAME, "champion", version)
    store.delete(MODEL_NAME, 2)
    assert store.rollback(MODEL_NAME, "champion") == 1


def test_remove_alias_keeps_history(tmp_path: Path, tiny_model_file: Path) -> None:
    store = ModelStore(tmp_path)
    for _ in range(2):
        register(store, tiny_model_file)
    store.set_alias(MODEL_NAME, "champion", 1)
    store.set_alias(MODEL_NAME, "champion", 2)
    store.remove_alias(MODEL_NAME, "champion")
    assert store.aliases(MODEL_NAME) == {}
    assert store.alias_history(MODEL_NAME, "champion") == [1, 2]
    with pytest.raises(NotFoundError, match="unknown alias 'champion'"):
        store.load(MODEL_NAME, "champion")
    with pytest.raises(NotFoundError, match="unknown alias"):
        store.remove_alias(MODEL_NAME, "champion")


# ---------------------------------------------------------------------- concurrency and repair


ALIAS_MOVER = """
    import sys, time
    from pathlib import Path
    from model_store import ModelStore

    root, index, moves, ready_file, go_file = sys.argv[1:]
    store = ModelStore(root)
    Path(ready_file).touch()
    while not Path(go_file).exists():
        time.sleep(0.001)
    for move in range(int(moves)):
        store.set_alias("imdb-sentiment", f"worker-{index}", move % 3 + 1)
"""

ALIASES_READER = """
    import json, sys
    from pathlib import Path

    aliases_path, ready_file, stop_file = map(Path, sys.argv[1:])
    reads = 0
    seen = False
    ready_file.touch()
    while not stop_file.exists():
        try:
            text = aliases_path.read_text()
        except FileNotFoundError:
            if seen:
                sys.exit("aliases.json vanished after it had been written")
            continue
        seen = True
        aliases = json.loads(text)  # a half-written file fails here
        if not isinstance(aliases, dict) or not all(type(v) is int for v in aliases.values()):
            sys.exit(f"aliases.json holds {text!r}")
        reads += 1
    print(reads)
"""


def test_concurrent_alias_moves_never_break_aliases_json(
    tmp_path: Path, three_versions: ModelStore
) -> None:
    store = three_versions
    root = Path(store.root)
    go_file, stop_file = tmp_path / "go", tmp_path / "stop"
    ready_files = [tmp_path / f"ready-{index}" for index in range(ALIAS_MOVERS + 1)]
    reader = start_child(
        ALIASES_READER, root / MODEL_NAME / "aliases.json", ready_files[-1], stop_file
    )
    movers = [
        start_child(ALIAS_MOVER, root, index, MOVES_PER_ALIAS_MOVER, ready_files[index], go_file)
        for index in range(ALIAS_MOVERS)
    ]
    wait_for_files(ready_files)
    started = time.perf_counter()
    go_file.touch()
    for mover in movers:
        finish(mover)
    elapsed = time.perf_counter() - started
    stop_file.touch()
    reads = int(finish(reader))

    expected_history = [move % 3 + 1 for move in range(MOVES_PER_ALIAS_MOVER)]
    aliases = store.aliases(MODEL_NAME)
    assert aliases == {f"worker-{index}": expected_history[-1] for index in range(ALIAS_MOVERS)}
    histories = [store.alias_history(MODEL_NAME, alias) for alias in aliases]
    assert all(history == expected_history for history in histories)  # no lost update
    assert sum(map(len, histories)) == ALIAS_MOVERS * MOVES_PER_ALIAS_MOVER
    assert reads > 0
    print(
        f"\n[model_store] {ALIAS_MOVERS} processes x {MOVES_PER_ALIAS_MOVER} alias moves "
        f"= {ALIAS_MOVERS * MOVES_PER_ALIAS_MOVER} moves in {elapsed:.2f} s; "
        f"a reader parsed aliases.json {reads} times without a failure"
    )


def test_repair_rebuilds_an_unreadable_aliases_json_from_the_history(
    three_versions: ModelStore,
) -> None:
    store = three_versions
    for alias, version in (("champion", 1), ("champion", 3), ("canary", 2), ("staging", 2)):
        store.set_alias(MODEL_NAME, alias, version)
    store.remove_alias(MODEL_NAME, "canary")  # a removed alias stays removed
    assert store.repair_aliases(MODEL_NAME) == []  # nothing to repair
    aliases_file = Path(store.root) / MODEL_NAME / "aliases.json"
    aliases_file.write_text('{"champion": 3,')

    with pytest.raises(IntegrityError, match=r"aliases\.json is not valid JSON"):
        store.set_alias(MODEL_NAME, "champion", 2)
    assert store.repair_aliases(MODEL_NAME) == ["aliases.json"]
    assert store.aliases(MODEL_NAME) == {"champion": 3, "staging": 2}
    assert store.alias_history(MODEL_NAME, "champion") == [1, 3]
    assert store.rollback(MODEL_NAME, "champion") == 1

    history_file = Path(store.root) / MODEL_NAME / ".alias-history.json"
    history_file.write_text("[]")
    assert store.repair_aliases(MODEL_NAME) == [".alias-history.json"]
    assert store.alias_history(MODEL_NAME, "champion") == [1]  # starts again from here
    aliases_file.write_text("")
    history_file.write_text("")
    assert store.repair_aliases(MODEL_NAME) == ["aliases.json", ".alias-history.json"]
    assert store.aliases(MODEL_NAME) == {}  # nothing left to rebuild from: set them again


def test_aliases_never_move_onto_a_version_that_fails_verification(
    three_versions: ModelStore,
) -> None:
    store = three_versions
    store.set_alias(MODEL_NAME, "champion", 1)
    store.set_alias(MODEL_NAME, "champion", 3)
    for version in (1, 2):
        model_file = Path(store.root) / MODEL_NAME / "versions" / str(version) / "model.keras"
        model_file.chmod(0o644)
        flip_last_byte(model_file)

    refused = "cannot point alias 'champion' at version {} of 'imdb-sentiment': model.keras was"
    with pytest.raises(IntegrityError, match=refused.format(2)) as error:
        store.set_alias(MODEL_NAME, "champion", 2)
    assert error.value.files == ["model.keras"]
    with pytest.raises(IntegrityError, match=refused.format(2)):
        store.promote(MODEL_NAME, 2, mode="always")
    with pytest.raises(IntegrityError, match=refused.format(1)):
        store.rollback(MODEL_NAME, "champion")
    assert store.aliases(MODEL_NAME) == {"champion": 3}
    assert store.alias_history(MODEL_NAME, "champion") == [1, 3]


# ---------------------------------------------------------------------- promotion


def test_promote_applies_the_rule_and_moves_the_alias_in_one_step(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    store = ModelStore(tmp_path)
    for accuracy in (0.80, 0.75, 0.85):
        register(store, tiny_model_file, metrics={"test_accuracy": accuracy})
    register(store, tiny_model_file, metrics={})  # v4 has no test accuracy

    assert store.promote(MODEL_NAME, 1) == PromotionDecision(True, "there is no champion yet", None)
    assert store.promote(MODEL_NAME, 2) == PromotionDecision(
        False, "test accuracy 0.7500 vs champion v1's 0.8000: worse, champion kept", 1
    )
    assert store.promote(MODEL_NAME, 3, mode="never").promote is False
    assert store.aliases(MODEL_NAME) == {"champion": 1}
    assert store.promote(MODEL_NAME, 2, mode="always") == PromotionDecision(
        True, "promotion mode is 'always'", 1
    )
    assert store.promote(MODEL_NAME, "latest").reason == (
        "the new version has no test accuracy to compare, champion kept"
    )
    assert store.promote(MODEL_NAME, 3) == PromotionDecision(
        True, "test accuracy 0.8500 vs champion v2's 0.7500: at least as good", 2
    )
    assert store.promote(MODEL_NAME, 4, "canary").reason == "there is no canary yet"
    assert store.promote(MODEL_NAME, 1, "canary") == PromotionDecision(
        True, "canary v4 has no test accuracy to compare", 4
    )
    with pytest.raises(InvalidInputError, match="promote must be 'auto', 'always' or 'never'"):
        store.promote(MODEL_NAME, 1, mode="sometimes")  # type: ignore[arg-type]
    assert store.aliases(MODEL_NAME) == {"champion": 3, "canary": 1}
    assert store.alias_history(MODEL_NAME, "champion") == [1, 2, 3]


PROMOTER = """
    import json, sys, time
    from pathlib import Path
    from model_store import ModelStore

    class SlowReadingStore(ModelStore):
        # Slow manifest reads widen the window in which an unlocked compare-then-set would let
        # two promoters both beat the same champion.
        def _read_manifest(self, *arguments, **keywords):
            time.sleep(0.02)
            return super()._read_manifest(*arguments, **keywords)

    root, version, ready_file, go_file = sys.argv[1:]
    store = SlowReadingStore(root)
    Path(ready_file).touch()
    while not Path(go_file).exists():
        time.sleep(0.001)
    decision = store.promote("imdb-sentiment", int(version))
    print(json.dumps([decision.promote, decision.previous_champion]))
"""


def test_concurrent_promotions_crown_the_best_version_and_record_each_move(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    promote_concurrently(tmp_path / "models", PROMOTER, tmp_path, tiny_model_file)


@pytest.mark.parametrize(
    ("mode", "new", "champion", "champion_accuracy", "promote"),
    [
        ("auto", 0.80, None, None, True),
        ("auto", 0.80, 2, 0.80, True),
        ("auto", 0.79, 2, 0.80, False),
        ("always", 0.10, 2, 0.90, True),
        ("never", 0.99, 2, 0.10, False),
    ],
)
def test_promotion_rule(
    mode: str, new: float, champion: int | None, champion_accuracy: float | None, promote: bool
) -> None:
    decision = decide_promotion(mode, new, champion, champion_accuracy)
    assert decision.promote is promote
    assert decision.reason
