"""Names the store accepts: model names, aliases, extra file names and version folders.

docs/design.md, "A model version on disk": names are validated, no path separators, no `..`.
"""

from __future__ import annotations

import re

from model_store.errors import InvalidNameError

__all__ = [
    "CHAMPION",
    "LATEST",
    "is_valid_name",
    "is_version_reference",
    "validate_alias",
    "validate_model_name",
    "validate_name",
    "version_number",
]

LATEST = "latest"
# The alias scoring uses by default and training promotes to.
CHAMPION = "champion"

# One path component, ASCII, no leading dot: safe on every filesystem and in URLs.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGITS_PATTERN = re.compile(r"[0-9]+")
_NAME_RULE = "1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_valid_name(value: object) -> bool:
    """Whether `value` is a name the store would accept for a model, an alias or a file."""
    return isinstance(value, str) and bool(_NAME_PATTERN.fullmatch(value)) and ".." not in value


def validate_name(value: object, kind: str) -> str:
    """Return `value` if it is a valid name; else InvalidNameError naming `kind` and the rule."""
    if not isinstance(value, str):
        raise InvalidNameError(f"{kind} must be a string, not {type(value).__name__}")
    if not is_valid_name(value):
        raise InvalidNameError(f"invalid {kind} {value!r}: use {_NAME_RULE}, no '..'")
    return value


def validate_model_name(name: object) -> str:
    """Return `name` if it is a valid model name, else raise InvalidNameError."""
    return validate_name(name, "model name")


def validate_alias(alias: object) -> str:
    """Return `alias` if it is a valid alias: a name that cannot be mistaken for a version."""
    alias = validate_name(alias, "alias")
    if is_version_reference(alias) or alias.lower() == LATEST:
        raise InvalidNameError(f"invalid alias {alias!r}: it would read as a version reference")
    return alias


def is_version_reference(text: str) -> bool:
    """Whether `text` is all digits, i.e. names a version by number ("3", "007")."""
    return bool(_DIGITS_PATTERN.fullmatch(text))


def version_number(entry_name: str) -> int | None:
    """The number a versions/ entry stands for; None for anything else (e.g. '007', 'tmp')."""
    if is_version_reference(entry_name) and str(int(entry_name)) == entry_name:
        return int(entry_name)
    return None
