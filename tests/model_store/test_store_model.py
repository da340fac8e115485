"""A model of the store, checked by machine: Hypothesis drives a real store (a folder, and the test
S3 server of testkit/s3.py) through registers, promotions, rollbacks, alias moves and removals,
deletes, resolves, verifies and repairs, against a few dicts that say what it should hold, with a
crash injected between the steps of a write (storage/faults.py: `crash_at` raises at a fault
point, where a real crash kills the process; the store's `finally` blocks then still run, which a
kill would skip, and test_deletes.py kills real processes at the same points).

After every step: every alias resolves to a sound version, whose model loads; the versions and
aliases are the model's; each alias's history is the model's, so every move is recorded. A refused
operation leaves every stored byte as it was; a crashed one is invisible, or done, with leftovers
that `repair` removes. The budget is fixed (EXAMPLES x STEPS), and a failure names its seed:
REVIEW_SCORING_STORE_SEED=<seed> replays it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from model_store import (
    AliasInUseError,
    ModelStore,
    ModelStoreError,
    NotFoundError,
    check_keras_archive,
)
from storage import locate
from storage.faults import SimulatedCrash, crash_at
from testkit.store import MODEL_NAME, register

# A fixed budget: examples (each a fresh store) of up to STEPS steps, per kind of storage.
EXAMPLES = {"folder": 100, "object storage": 15}
STEPS = 25
ALIASES = ("champion", "canary")
VERSION_NUMBERS = st.integers(min_value=1, max_value=5)
# Where each kind of write can die, and None: it does not.
REGISTER_CRASHES = (None, "register.staged", "register.before-commit")
DELETE_CRASHES = (None, "aliases.before-commit", "delete.committed", "delete.removing")
ALIAS_CRASHES = {
    "folder": (None, "aliases.before-commit", "aliases.between-files"),
    "object storage": (None, "aliases.before-commit"),
}
# What a deleted version's folder holds once its delete is finished.
TOMBSTONE_FILES = {"folder": {".deleted"}, "object storage": {".claim", ".deleted"}}
IMMUTABLE_FILES = ("/model.keras", "/vocabulary.json", "/manifest.json", "/manifest.sha256")
COVERED: Counter[str] = Counter()  # examples, steps and crashes run, printed after each kind


class StoreModel(RuleBasedStateMachine):
    """The store as a few dicts: published versions and their accuracy, deleted ones, aliases
    and the history of each (None where it was removed), as AliasState keeps it."""

    kind = "folder"
    new_root: Callable[[], str] = staticmethod(lambda: "")
    model_file: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        self.store = ModelStore(self.new_root(), check_model=check_keras_archive)
        self.accuracy: dict[int, float] = {}
        self.deleted: set[int] = set()
        self.highest = 0  # the highest number given out: never given again
        self.aliases: dict[str, int] = {}
        self.history: dict[str, list[int | None]] = {}
        self.unfinished_deletes: set[int] = set()

    # ------------------------------------------------------------------ the model's rules

    def _move(self, alias: str, version: int) -> None:
        if self.aliases.get(alias) != version:
            self.aliases[alias] = version
            self._record(alias, version)

    def _record(self, alias: str, version: int | None) -> None:
        versions = self.history.setdefault(alias, [])
        if (versions[-1] if versions else None) != version:
            versions.append(version)

    def _roll_back(self, alias: str) -> int | None:
        current = self.aliases[alias]
        earlier = [version for version in self.history[alias] if version is not None]
        while earlier and (earlier[-1] == current or earlier[-1] not in self.accuracy):
            earlier.pop()
        if not earlier:
            return None
        self.aliases[alias] = earlier[-1]
        self.history[alias] = list(earlier)
        return earlier[-1]

    # ------------------------------------------------------------------ helpers

    def _snapshot(self) -> dict[str, str]:
        """Every stored file, and its content's sha256 where it can change (a published
        version's files cannot; the folder's lock file is not the store's state)."""
        root = locate(self.store.root)
        return {
            relative: (
                ""
                if relative.endswith(IMMUTABLE_FILES)
                else hashlib.sha256(root.joinpath(relative).read_bytes()).hexdigest()
            )
            for relative in root.files_below()
            if not relative.endswith("/.lock")
        }

    def _refused(self, error: type[Exception], action: Callable[[], Any]) -> None:
        before = self._snapshot()
        with pytest.raises(error):
            action()
        assert self._snapshot() == before, "a refused operation changed what is stored"

    def _crashing(self, point: str | None, action: Callable[[], Any]) -> tuple[Any, str | None]:
        """What `action()` returned, and the point where it crashed: None, and `point`, when it
        crashed there; what it returned, and None, when it never reached `point` (a change
        that changes nothing writes nothing)."""
        if point is None:
            return action(), None
        try:
            with crash_at(point):
                return action(), None
        except SimulatedCrash:
            COVERED[f"crash at {point}"] += 1
            return None, point

    # ------------------------------------------------------------------ rules

    @initialize(accuracy=st.sampled_from([0.7, 0.8, 0.9]))
    def first_version(self, accuracy: float) -> None:
        self.register(accuracy, None)

    @rule(accuracy=st.sampled_from([0.7, 0.8, 0.9]), crash=st.sampled_from(REGISTER_CRASHES))
    def register(self, accuracy: float, crash: str | None) -> None:
        registered, crash = self._crashing(
            crash,
            lambda: register(self.store, self.model_file, metrics={"test_accuracy": accuracy}),
        )
        if crash is not None:
            if crash == "register.before-commit" and self.kind == "object storage":
                self.highest += 1  # its claim keeps the number taken
            return
        assert registered.version == self.highest + 1
        self.highest = registered.version
        self.accuracy[registered.version] = accuracy

    @rule(alias=st.sampled_from(ALIASES), version=VERSION_NUMBERS, data=st.data())
    def set_alias(self, alias: str, version: int, data: st.DataObject) -> None:
        if version not in self.accuracy:
            self._refused(NotFoundError, lambda: self.store.set_alias(MODEL_NAME, alias, version))
            return
        crash = data.draw(st.sampled_from(ALIAS_CRASHES[self.kind]), label="crash")
        _, crash = self._crashing(crash, lambda: self.store.set_alias(MODEL_NAME, alias, version))
        if crash is None:  # both points come before an alias change's commit
            self._move(alias, version)

    @rule(version=VERSION_NUMBERS, mode=st.sampled_from(["auto", "always", "never"]))
    def promote(self, version: int, mode: str) -> None:
        if version not in self.accuracy:
            self._refused(NotFoundError, lambda: self.store.promote(MODEL_NAME, version, mode=mode))
            return
        decision = self.store.promote(MODEL_NAME, version, mode=mode)  # type: ignore[arg-type]
        holder = self.aliases.get("champion")
        expected = mode == "always" or (
            mode == "auto" and (holder is None or self.accuracy[version] >= self.accuracy[holder])
        )
        assert decision.promote == expected and decision.previous_champion == holder
        if expected:
            self._move("champion", version)

    @rule(alias=st.sampled_from(ALIASES), data=st.data())
    def remove_alias(self, alias: str, data: st.DataObject) -> None:
        if alias not in self.aliases:
            self._refused(NotFoundError, lambda: self.store.remove_alias(MODEL_NAME, alias))
            return
        crash = data.draw(st.sampled_from(ALIAS_CRASHES[self.kind]), label="crash")
        _, crash = self._crashing(crash, lambda: self.store.remove_alias(MODEL_NAME, alias))
        if crash is None:
            del self.aliases[alias]
            self._record(alias, None)

    @rule(alias=st.sampled_from(ALIASES), data=st.data())
    def rollback(self, alias: str, data: st.DataObject) -> None:
        if alias not in self.aliases:
            self._refused(NotFoundError, lambda: self.store.rollback(MODEL_NAME, alias))
            return
        history, aliases = dict(self.history), dict(self.aliases)
        history[alias] = list(history[alias])
        target = self._roll_back(alias)
        if target is None:
            self._refused(NotFoundError, lambda: self.store.rollback(MODEL_NAME, alias))
            return
        crash = data.draw(st.sampled_from(ALIAS_CRASHES[self.kind]), label="crash")
        rolled_to, crash = self._crashing(crash, lambda: self.store.rollback(MODEL_NAME, alias))
        if crash is None:
            assert rolled_to == target
        else:
            self.history, self.aliases = history, aliases

    def _deletable(self) -> list[int]:
        return sorted(set(self.accuracy) - set(self.aliases.values()))

    @precondition(lambda self: bool(self._deletable()))
    @rule(data=st.data())
    def delete_a_deletable_version(self, data: st.DataObject) -> None:
        # Most numbers drawn at random are refused; this rule makes deletes that go through
        # (and crash) common.
        self.delete(data.draw(st.sampled_from(self._deletable()), label="version"), data)

    @rule(version=VERSION_NUMBERS, data=st.data())
    def delete(self, version: int, data: st.DataObject) -> None:
        if version not in self.accuracy:
            self._refused(NotFoundError, lambda: self.store.delete(MODEL_NAME, version))
            return
        if version in self.aliases.values():
            self._refused(AliasInUseError, lambda: self.store.delete(MODEL_NAME, version))
            return
        crash = data.draw(st.sampled_from(DELETE_CRASHES), label="crash")
        _, crash = self._crashing(crash, lambda: self.store.delete(MODEL_NAME, version))
        if crash == "aliases.before-commit":
            return
        del self.accuracy[version]
        self.deleted.add(version)
        if crash is not None:
            self.unfinished_deletes.add(version)

    @rule(ref=st.one_of(VERSION_NUMBERS, st.sampled_from(["latest", *ALIASES])))
    def resolve(self, ref: int | str) -> None:
        expected = {"latest": max(self.accuracy, default=None), **self.aliases}.get(ref, ref)
        if expected in self.accuracy:
            assert self.store.resolve(MODEL_NAME, ref) == expected
        else:
            self._refused(NotFoundError, lambda: self.store.resolve(MODEL_NAME, ref))

    @precondition(lambda self: bool(self.aliases))
    @rule(data=st.data())
    def load(self, data: st.DataObject) -> None:
        alias = data.draw(st.sampled_from(sorted(self.aliases)), label="alias")
        loaded = self.store.load(MODEL_NAME, alias)
        assert loaded.version == self.aliases[alias] and loaded.model is not None

    @rule()
    def verify(self) -> None:
        assert self.store.verify_all(MODEL_NAME) == dict.fromkeys(sorted(self.accuracy))

    @rule()
    def repair(self) -> None:
        repairs = self.store.repair(MODEL_NAME)
        repaired = {int(line.split(":")[0].removeprefix("versions/")) for line in repairs}
        assert repaired <= self.unfinished_deletes, repairs
        self.unfinished_deletes.clear()
        for version in self.deleted:
            files = set(locate(f"{self.store.root}/{MODEL_NAME}/versions/{version}").files_below())
            assert files == TOMBSTONE_FILES[self.kind], (version, files)
        assert self.store.repair(MODEL_NAME) == []

    # ------------------------------------------------------------------ invariants

    @invariant()
    def holds_what_the_model_says(self) -> None:
        COVERED["steps"] += 1
        assert [found.version for found in self.store.list_versions(MODEL_NAME)] == sorted(
            self.accuracy
        )
        assert self.store.aliases(MODEL_NAME) == self.aliases
        for alias, versions in self.history.items():
            recorded = [version for version in versions if version is not None]
            assert self.store.alias_history(MODEL_NAME, alias) == recorded, alias
        for alias, version in self.aliases.items():
            # Its manifest reads and matches its checksum; `verify` and `load` check the rest.
            assert self.store.manifest(MODEL_NAME, alias)["version"] == version

    def teardown(self) -> None:
        COVERED["examples"] += 1
        if self.accuracy or self.deleted:
            self.repair()


def check_store_model(kind: str, new_root: Callable[[], str], model_file: Path) -> None:
    machine_seed = int(os.environ.get("REVIEW_SCORING_STORE_SEED") or secrets.randbelow(2**32))

    class Machine(StoreModel):
        pass

    Machine.kind = kind
    Machine.new_root = staticmethod(new_root)
    Machine.model_file = model_file
    print(f"\n[store model] {kind}: seed {machine_seed}, {EXAMPLES[kind]} examples x {STEPS} steps")
    try:
        run_state_machine_as_test(
            seed(machine_seed)(Machine),
            settings=settings(
                max_examples=EXAMPLES[kind],
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
    except (AssertionError, ModelStoreError, OSError) as error:
        error.add_note(f"replay: REVIEW_SCORING_STORE_SEED={machine_seed} ({kind})")
        raise
    finally:
        print(f"[store model] {kind}: ran {dict(sorted(COVERED.items()))}")
        COVERED.clear()


def test_the_store_in_a_folder_holds_what_its_model_says(
    tmp_path: Path, tiny_model_file: Path
) -> None:
    check_store_model("folder", lambda: str(tmp_path / uuid.uuid4().hex), tiny_model_file)


def test_the_store_in_object_storage_holds_what_its_model_says(
    s3_bucket: str, tiny_model_file: Path
) -> None:
    check_store_model("object storage", lambda: f"{s3_bucket}/{uuid.uuid4().hex}", tiny_model_file)
