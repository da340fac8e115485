"""`review-scoring models ...`: the command-line face of the model store.

The console script (flows/cli.py) calls `add_models_parser` on its subparsers and, for the
`models` command, `run_models_command(args, store_root)`. Importing it imports no Keras; `verify`
does, to check that each model loads in Keras's safe mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from model_store.aliases import ALIAS_HISTORY_FILE, ALIASES_FILE
from model_store.entities import ModelVersion
from model_store.errors import IntegrityError, ModelStoreError, NotFoundError
from model_store.names import CHAMPION, LATEST
from model_store.store import ModelStore
from storage import UserError

__all__ = ["KEY_METRICS", "add_models_parser", "run_models_command"]

# Shown as columns by `models list` when a version's metrics have them, in this order.
KEY_METRICS = ("test_accuracy", "test_auc", "test_loss", "accuracy", "auc", "loss", "f1")
_FALLBACK_METRIC_COLUMNS = 3


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `models` command (with its own subcommands) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "models",
        help="list, show, verify, promote and roll back model versions",
        description="Manage the versions and aliases in the model store.",
    )
    commands = parser.add_subparsers(dest="models_command", metavar="COMMAND", required=True)

    list_parser = commands.add_parser("list", help="list models, or the versions of one model")
    list_parser.add_argument("name", nargs="?", help="model name; without it, list the models")
    _add_json_flag(list_parser)

    show_parser = commands.add_parser("show", help="show the manifest of a version")
    show_parser.add_argument("name", help="model name")
    show_parser.add_argument("ref", nargs="?", default=LATEST, help=_REF_HELP + " (default latest)")
    _add_json_flag(show_parser)

    verify_parser = commands.add_parser("verify", help="check the checksums of versions")
    verify_parser.add_argument("name", help="model name")
    verify_parser.add_argument("ref", nargs="?", help=_REF_HELP + " (default: every version)")
    _add_json_flag(verify_parser)

    promote_parser = commands.add_parser("promote", help="point an alias at a version")
    promote_parser.add_argument("name", help="model name")
    promote_parser.add_argument("ref", help=_REF_HELP)
    promote_parser.add_argument("--alias", default=CHAMPION, help="default: %(default)s")

    rollback_parser = commands.add_parser(
        "rollback", help="move an alias back to the version it pointed to before"
    )
    rollback_parser.add_argument("name", help="model name")
    rollback_parser.add_argument("--alias", default=CHAMPION, help="default: %(default)s")

    alias_parser = commands.add_parser("alias", help="set, remove or repair aliases")
    alias_commands = alias_parser.add_subparsers(
        dest="alias_command", metavar="ACTION", required=True
    )
    alias_set_parser = alias_commands.add_parser("set", help="point ALIAS at a version")
    alias_set_parser.add_argument("name", help="model name")
    alias_set_parser.add_argument("alias", help="alias name, e.g. champion")
    alias_set_parser.add_argument("ref", nargs="?", default=LATEST, help=_REF_HELP)
    alias_remove_parser = alias_commands.add_parser("remove", help="remove ALIAS")
    alias_remove_parser.add_argument("name", help="model name")
    alias_remove_parser.add_argument("alias", help="alias name")
    alias_repair_parser = alias_commands.add_parser("repair", help="the same as `models repair`")
    alias_repair_parser.add_argument("name", help="model name")

    repair_parser = commands.add_parser(
        "repair",
        help="repair what a command that died midway left: a half-done delete, an unreadable "
        "alias record",
    )
    repair_parser.add_argument("name", help="model name")

    delete_parser = commands.add_parser(
        "delete", help="delete a version (refused while an alias points at it)"
    )
    delete_parser.add_argument("name", help="model name")
    delete_parser.add_argument("ref", help=_REF_HELP)
    export_parser = commands.add_parser(
        "export",
        help="write a version in another tool's format (mlflow: an MLflow pyfunc model)",
        description="Write a version as an MLflow model (needs the mlflow extra): its pyfunc "
        "takes a DataFrame with a text column of raw reviews and returns score, label and "
        "status per row, tokenized as training did. Serve it with `mlflow models serve`, or run "
        "it in Spark with mlflow.pyfunc.spark_udf.",
    )
    export_parser.add_argument("name", help="model name")
    export_parser.add_argument("ref", help=_REF_HELP)
    export_parser.add_argument("--format", choices=["mlflow"], required=True, dest="export_format")
    export_parser.add_argument(
        "--output",
        default=None,
        help="the folder to create (default: ./NAME-vN-mlflow); it must not exist",
    )
    for changing in (
        promote_parser,
        rollback_parser,
        alias_set_parser,
        alias_remove_parser,
        delete_parser,
    ):
        changing.add_argument(
            "--reason",
            default="",
            help="why, for the model's registry view in the Prefect UI (default: the command)",
        )
    return parser


_REF_HELP = "version number, alias or 'latest'"


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def run_models_command(
    args: argparse.Namespace,
    store_root: str | Path,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run a parsed `models` command against the store at `store_root`; return the exit code.

    Store errors become one line on stderr, `error: ...`, and exit code 1; a damaged alias
    file's error says which command repairs it.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    store = ModelStore(store_root)
    handlers = {
        "list": _list,
        "show": _show,
        "verify": _verify,
        "promote": _promote,
        "rollback": _rollback,
        "alias": _alias,
        "delete": _delete,
        "repair": _repair,
    }
    try:
        return handlers[args.models_command](store, args, out, err)
    except UserError as error:  # a bug keeps its traceback (tasks/failures.py)
        print(_error_line(error, getattr(args, "name", None)), file=err)
        return 1


def _error_line(error: Exception, model_name: str | None) -> str:
    """`error: <message>`; for a damaged alias file, also the command that repairs it."""
    message = _one_line(str(error))
    if isinstance(error, IntegrityError) and {ALIASES_FILE, ALIAS_HISTORY_FILE} & set(error.files):
        message += f"; `review-scoring models repair {model_name or 'NAME'}` rebuilds it"
    return f"error: {message}"


def _list(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.name is None:
        return _list_models(store, args, out, err)
    versions = store.list_versions(args.name)
    if args.json:
        rows = [
            {
                "version": version.version,
                "created_at": version.created_at,
                "aliases": list(version.aliases),
                "metrics": version.metrics,
                "run_id": version.manifest.get("run_id"),
                "data_fingerprint": version.manifest.get("data_fingerprint"),
                "path": str(version.path),
                "status": version.status,
            }
            for version in versions
        ]
        print(json.dumps(rows, indent=2), file=out)
        return 0
    if not versions:
        print(f"model {args.name!r} has no versions", file=out)
        return 0
    metric_columns = _metric_columns(versions)
    header = [
        "VERSION",
        "CREATED",
        *(name.upper() for name in metric_columns),
        "ALIASES",
        "STATUS",
    ]
    rows = [
        [
            str(version.version),
            _format_time(version.created_at),
            *(_format_metric(version.metrics.get(name)) for name in metric_columns),
            ", ".join(version.aliases) or "-",
            version.status,
        ]
        for version in versions
    ]
    _print_table(header, rows, out)
    return 0


def _list_models(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not store.location.exists():  # a typo in the root is not an empty store
        raise NotFoundError(
            f"no model store at {store.root}: nothing is there; check model_store_root "
            "(REVIEW_SCORING_MODEL_STORE_ROOT)"
        )
    summaries = []
    for name in store.list_models():
        try:
            versions = [version.version for version in store.list_versions(name)]
            aliases = store.aliases(name)
        except IntegrityError as error:  # here the hint can name the model
            print(_error_line(error, name), file=err)
            return 1
        summaries.append(
            {"name": name, "versions": versions, "latest": max(versions), "aliases": aliases}
        )
    if args.json:
        print(json.dumps(summaries, indent=2), file=out)
        return 0
    if not summaries:
        print(f"no models in {store.root}", file=out)
        return 0
    rows = [
        [
            summary["name"],
            str(len(summary["versions"])),
            str(summary["latest"]),
            ", ".join(f"{alias} -> {version}" for alias, version in summary["aliases"].items())
            or "-",
        ]
        for summary in summaries
    ]
    _print_table(["MODEL", "VERSIONS", "LATEST", "ALIASES"], rows, out)
    return 0


def _show(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    version = store.resolve(args.name, args.ref)
    manifest = store.manifest(args.name, version)
    if args.json:
        print(json.dumps(manifest, indent=2, ensure_ascii=False), file=out)
        return 0
    aliases = sorted(
        alias for alias, target in store.aliases(args.name).items() if target == version
    )
    libraries = manifest.get("library_versions") or {}
    lines = [
        f"model:            {manifest.get('model_name')}",
        f"version:          {version}",
        f"aliases:          {', '.join(aliases) or '-'}",
        f"created:          {_format_time(manifest.get('created_at'))}",
        f"run id:           {manifest.get('run_id') or '-'}",
        f"data fingerprint: {manifest.get('data_fingerprint') or '-'}",
        f"params:           {_format_mapping(manifest.get('params'))}",
        f"metrics:          {_format_mapping(manifest.get('metrics'))}",
        f"libraries:        {', '.join(f'{k} {v}' for k, v in libraries.items())}",
        f"source:           {_format_source(manifest.get('source'))}",
        "files:",
    ]
    for file_name, record in sorted((manifest.get("files") or {}).items()):
        lines.append(f"  {file_name:<24} {record['bytes']:>12} bytes  sha256 {record['sha256']}")
    print("\n".join(lines), file=out)
    return 0


def _format_source(source: Any) -> str:
    """`<commit>`, `<commit> (uncommitted changes)`, or `-` (versions from before it was kept)."""
    if not isinstance(source, dict) or not source.get("commit"):
        return "-"
    changes = {True: "", False: " (uncommitted changes)"}.get(source.get("tree_clean"), "")
    return f"{source['commit']}{changes}"


def _verify(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.ref is None:
        results = store.verify_all(args.name)
    else:
        version = store.resolve(args.name, args.ref)
        try:
            store.verify(args.name, version)
        except ModelStoreError as error:
            results = {version: error}
        else:
            results = {version: None}
    failed = [version for version, error in results.items() if error is not None]
    if args.json:
        report = [
            {
                "version": version,
                "ok": error is None,
                "error": None if error is None else str(error),
            }
            for version, error in sorted(results.items())
        ]
        print(json.dumps({"name": args.name, "results": report}, indent=2), file=out)
    else:
        for version, error in sorted(results.items()):
            status = "ok" if error is None else f"FAILED: {_one_line(str(error))}"
            print(f"version {version}: {status}", file=out)
    if failed:
        print(
            f"error: {len(failed)} of {len(results)} version(s) of {args.name!r} failed "
            f"verification: {', '.join(map(str, failed))}",
            file=err,
        )
        return 1
    return 0


def _promote(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    previous = store.aliases(args.name).get(args.alias)
    version = store.set_alias(args.name, args.alias, args.ref)
    print(f"{args.alias} -> version {version} of {args.name}{_was(previous, version)}", file=out)
    return 0


def _rollback(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    previous = store.aliases(args.name).get(args.alias)
    version = store.rollback(args.name, args.alias)
    print(f"{args.alias} -> version {version} of {args.name}{_was(previous, version)}", file=out)
    return 0


def _alias(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.alias_command == "set":
        return _promote(store, args, out, err)
    if args.alias_command == "repair":
        return _repair(store, args, out, err)
    previous = store.aliases(args.name).get(args.alias)
    store.remove_alias(args.name, args.alias)
    print(f"removed alias {args.alias} of {args.name} (was version {previous})", file=out)
    return 0


def _repair(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    repairs = store.repair(args.name)
    aliases = store.aliases(args.name)
    alias_text = ", ".join(f"{alias} -> {aliases[alias]}" for alias in sorted(aliases)) or "none"
    if not repairs:
        print(f"{args.name} is sound: nothing to repair; aliases: {alias_text}", file=out)
        return 0
    for repair in repairs:
        print(f"repaired {args.name} {repair}", file=out)
    print(f"aliases: {alias_text}", file=out)
    return 0


def _delete(store: ModelStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    version = store.delete(args.name, args.ref)
    print(f"deleted version {version} of {args.name}", file=out)
    return 0


def _metric_columns(versions: Sequence[ModelVersion]) -> list[str]:
    present = {name for version in versions for name in version.metrics}
    columns = [name for name in KEY_METRICS if name in present]
    return columns or sorted(present)[:_FALLBACK_METRIC_COLUMNS]


def _format_metric(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _format_time(iso_text: str | None) -> str:
    if not iso_text:
        return "-"
    try:
        moment = datetime.fromisoformat(iso_text)
    except ValueError:
        return iso_text
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _format_mapping(mapping: Any) -> str:
    if not mapping:
        return "-"
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in mapping.items())


def _was(previous: int | None, version: int) -> str:
    if previous is None:
        return " (new alias)"
    if previous == version:
        return " (unchanged)"
    return f" (was {previous})"


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())
