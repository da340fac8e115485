"""The `review-scoring` command: a thin face over the flows and the model store.

`train` and `score` take one option per field of the flow's parameter model (flows.training's
TrainParams, flows.scoring's ScoreParams), with that field's description and default as help:
the same model the Prefect UI draws its run form from.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import typing
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from flows.stopping import StoppedBySignal, stop_signals_end_runs_cancelled
from storage import InvalidParameterError, UserError

__all__ = ["ParameterError", "build_parser", "main", "option_flag"]


class ParameterError(InvalidParameterError):
    """A flow parameter given on the command line that cannot be used as given."""


def option_flag(name: str) -> str:
    """`--data-path` for the field `data_path`."""
    return "--" + name.replace("_", "-")


# The options that name a file or folder (storage/location.py reads each), and those whose default
# is a setting (flows/settings.py: the flows resolve them through Settings.resolve).
_PATH_SUFFIXES = ("_path", "_root")
_SETTING_OF = {
    "input_path": "input_dir",
    "output_root": "output_dir",
    "model_name": "model_name",
    "model_store_root": "model_store_root",
}
# What train --help and score --help say about every path and default.
_PATHS_AND_DEFAULTS = (
    "Every path is a local path or an object storage URI: s3://bucket/prefix (credentials from "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, another endpoint from "
    "AWS_ENDPOINT_URL) or gs://bucket/prefix (GOOGLE_APPLICATION_CREDENTIALS); never with "
    "credentials in it. An option left out takes the flow parameter's default, the one the "
    "Prefect UI's run form shows; the model store, the model name, the input and the output "
    "fall back to the settings, REVIEW_SCORING_* environment variables."
)


def _setting_now(setting: str) -> str:
    """The value of a setting this command would use (its variable, unset, or the default)."""
    from flows.settings import get_settings

    try:
        return str(getattr(get_settings(), setting))
    except Exception:  # a bad setting is reported when a command runs, not by --help
        return "the setting cannot be read; a run says why"


def _add_model_options(parser: argparse.ArgumentParser, params_class: type[BaseModel]) -> None:
    """One --option per field of a flow's parameter model, so the CLI and the UI form agree."""
    for name, field in params_class.model_fields.items():
        annotation = field.annotation
        options = [
            argument for argument in typing.get_args(annotation) if argument is not type(None)
        ]
        # Optional[X] -> X; a bare Literal keeps its values.
        base = (
            options[0]
            if typing.get_origin(annotation) is not typing.Literal and options
            else annotation
        )
        help_text = field.description or ""
        if name.endswith(_PATH_SUFFIXES):
            help_text += "; a local path, or an s3:// or gs:// URI"
        if name in _SETTING_OF:
            help_text += f" (now: {_setting_now(_SETTING_OF[name])})"
        elif field.default is not None:
            help_text += f" (default: {field.default})"
        if base is bool:
            action: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif typing.get_origin(base) is typing.Literal:
            action = {"choices": list(typing.get_args(base))}
        else:
            action = {}
        # default=None: an option left out leaves the model's default in place.
        parser.add_argument(option_flag(name), dest=name, default=None, help=help_text, **action)


def _params_from(args: argparse.Namespace, params_class: type[BaseModel]) -> Any:
    """The flow's parameter model from the options given; the others keep the model's defaults.

    Raises ParameterError for an option given as "" (it never quietly means the default), and
    pydantic's ValidationError for a value the model refuses.
    """
    given = {
        name: getattr(args, name)
        for name in params_class.model_fields
        if getattr(args, name, None) is not None
    }
    empty = [option_flag(name) for name, value in given.items() if value == ""]
    if empty:
        raise ParameterError(f"{', '.join(empty)}: empty; leave the option out to use the default")
    return params_class.model_validate(given)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


def _problems(error: ValidationError, as_options: bool) -> str:
    """Every problem on one line, led by the option (or the field) it concerns, if any."""
    problems = []
    for problem in error.errors():
        where = [str(part) for part in problem["loc"][:1]]
        prefix = "".join(f"{option_flag(part) if as_options else part}: " for part in where)
        problems.append(prefix + _one_line(problem["msg"]))
    return "; ".join(problems)


def _flow_of(command: str) -> tuple[Any, type[BaseModel]]:
    """The flow a `train` or `score` command runs, and its parameter model."""
    if command == "train":
        from flows.training import TrainParams, train_flow

        return train_flow, TrainParams
    from flows.scoring import ScoreParams, score_flow

    return score_flow, ScoreParams


def build_parser() -> argparse.ArgumentParser:
    """The command line: train, score, recipes, models, backfill."""
    from model_store.cli import add_models_parser

    parser = argparse.ArgumentParser(
        prog="review-scoring",
        description="Train, score and manage the movie-review sentiment models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (
        ("train", "run the training flow locally"),
        ("score", "run the scoring flow locally"),
    ):
        command_parser = commands.add_parser(
            command,
            help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}. " + _PATHS_AND_DEFAULTS,
        )
        _add_model_options(command_parser, _flow_of(command)[1])
        command_parser.add_argument(
            "--json",
            action="store_true",
            help="print the run's whole record as JSON (default: a short summary)",
        )
    commands.add_parser(
        "recipes",
        help="list the named training recipes (train --recipe NAME)",
        description="The named training recipes: what each is, the settings it changes from "
        "the Keras tutorial's defaults, and what it measured on IMDB.",
    )
    add_models_parser(commands)
    backfill_parser = commands.add_parser(
        "backfill",
        help="score past nights as the nightly deployment would have (a run per night)",
        description="Score a range of dates (or a list) as the nightly deployment would have: "
        "one run of the deployment per date, at its scheduled time, with that date's partition, "
        "one after the other. Needs the server, the deployment and a worker (make server, make "
        "deploy, make worker) and PREFECT_API_URL.",
    )
    backfill_parser.add_argument("--from", dest="first", type=_date, help="first date, YYYY-MM-DD")
    backfill_parser.add_argument("--to", dest="last", type=_date, help="last date (included)")
    backfill_parser.add_argument(
        "--dates", nargs="+", type=_date, default=[], help="these dates instead of a range"
    )
    backfill_parser.add_argument(
        "--partition",
        default="day={scheduled_date}",
        help="each night's partition under the input path (default: %(default)s)",
    )
    backfill_parser.add_argument(
        "--deployment", default=None, help="default: the nightly scoring deployment"
    )
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _backfill(args: argparse.Namespace) -> int:
    import prefect.settings
    from prefect import get_client

    from flows.backfill import backfill, dates_between
    from flows.deploy import NIGHTLY_SCORING
    from tasks.scoring.inputs import check_partition

    if args.dates and (args.first or args.last):
        raise InvalidParameterError("give --dates, or --from and --to, not both")
    if not args.dates and not (args.first and args.last):
        raise InvalidParameterError("give --from and --to, or --dates")
    check_partition(args.partition)
    if "{scheduled_date}" not in args.partition:
        raise InvalidParameterError(
            f"--partition {args.partition!r} has no {{scheduled_date}}: every night would score "
            "the same folder"
        )
    nights = sorted(set(args.dates)) or dates_between(args.first, args.last)
    if not prefect.settings.PREFECT_API_URL.value():
        raise InvalidParameterError(
            "backfill runs the nightly deployment on a Prefect server: set PREFECT_API_URL "
            "(make server, make deploy and make worker set one up)"
        )
    with get_client(sync_client=True) as client:
        ended = backfill(
            client,
            args.deployment or NIGHTLY_SCORING,
            nights,
            args.partition,
            lambda line: print(line, flush=True),
        )
    not_completed = [run for run in ended if not run.state.is_completed()]
    if not_completed:
        failed = f"{len(not_completed)} of {len(ended)} nights did not complete"
        print(f"error: {failed}", file=sys.stderr)
        return 1
    return 0


# The `models` commands that change a model's versions or aliases: each is recorded in the model's
# registry view in the Prefect UI (tasks/registry_view.py).
_REGISTRY_CHANGES = ("promote", "rollback", "alias", "delete")


def _models(args: argparse.Namespace) -> int:
    """A `models` command; a change it made is added to the model's registry view."""
    from flows.settings import get_settings
    from model_store import ModelStore, ModelStoreError
    from model_store.cli import run_models_command

    store_root = get_settings().model_store_root
    if args.models_command == "export":
        return _export(args, store_root)
    if args.models_command == "verify":
        import tasks.layers  # noqa: F401 (safe-mode loading rebuilds the project's own layers)
    changes = args.models_command in _REGISTRY_CHANGES and getattr(args, "alias_command", "") in (
        "",
        "set",
        "remove",
    )
    if not changes:
        return run_models_command(args, store_root)
    store = ModelStore(store_root)
    try:
        before = store.aliases(args.name)
        versions_before = {version.version for version in store.list_versions(args.name)}
    except (ModelStoreError, UserError):
        return run_models_command(args, store_root)  # it says what is wrong
    code = run_models_command(args, store_root)
    if code == 0:
        _record_registry_change(store, args, before, versions_before)
    return code


def _export(args: argparse.Namespace, store_root: str) -> int:
    """`models export NAME REF --format mlflow`: the folder it wrote, and how to load it."""
    from model_store import ModelStore

    try:
        from tasks.mlflow_export import export_mlflow_model
    except ModuleNotFoundError as missing:
        raise InvalidParameterError(
            f"--format mlflow needs the mlflow extra ({missing.name} is not installed): "
            "pip install 'review-scoring[mlflow]'"
        ) from None
    version = ModelStore(store_root).resolve(args.name, args.ref)
    output = Path(args.output or f"{args.name}-v{version}-mlflow")
    written = export_mlflow_model(store_root, args.name, version, output)
    print(f"{args.name} v{version}: MLflow model at {written}")
    print(
        f"  load: mlflow.pyfunc.load_model({str(written)!r}); input: a DataFrame with a text column"
    )
    return 0


def _record_registry_change(
    store: Any, args: argparse.Namespace, before: dict[str, int], versions_before: set[int]
) -> None:
    """Add what the command changed to the registry view; a Prefect API that cannot be reached
    costs one line on stderr, never the command's exit code (the store changed either way)."""
    import getpass

    from tasks.registry_view import alias_changes, publish_registry, registry_key

    after = store.aliases(args.name)
    deleted = sorted(
        versions_before - {version.version for version in store.list_versions(args.name)}
    )
    command = (
        " ".join(["review-scoring models", *sys.argv[2:]])
        if sys.argv[1:2] == ["models"]
        else (f"review-scoring models {args.models_command}")
    )
    changes = alias_changes(
        args.name,
        before,
        after,
        deleted,
        reason=args.reason or f"`{command}` (no --reason given)",
        by=f"command line ({getpass.getuser()})",
        rolled_back=args.models_command == "rollback",
    )
    if not changes:
        return
    try:
        publish_registry(str(store.root), args.name, changes)
    except Exception as error:  # the store changed: the view is secondary
        print(
            f"note: the registry view {registry_key(args.name)} was not updated: {error}",
            file=sys.stderr,
        )


def _run(args: argparse.Namespace) -> int:
    if args.command == "backfill":
        return _backfill(args)
    if args.command == "recipes":
        from flows.summaries import recipes_text

        print(recipes_text())
        return 0
    if args.command not in ("train", "score"):
        return _models(args)
    run_flow, params_class = _flow_of(args.command)
    from flows.settings import get_settings
    from tasks.log_format import say_expected_failures_once

    say_expected_failures_once()

    get_settings()  # a bad setting fails here, before a run (and its parameters) exists
    try:
        params = _params_from(args, params_class)
    except ValidationError as error:
        print(f"error: {_problems(error, as_options=True)}", file=sys.stderr)
        return 2
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started: list[Any] = []

    def note_run_for_cancelling(flow: Any, flow_run: Any, state: Any) -> None:
        started.append(flow_run.id)

    with stop_signals_end_runs_cancelled(started):
        result = run_flow.with_options(on_crashed=[note_run_for_cancelling])(params)
    from flows.summaries import scoring_summary_text, training_summary_text

    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif args.command == "score":
        print(scoring_summary_text(result))
    else:
        print(training_summary_text(result))
    return 0


# What `make` and the image set, for a command run straight from a shell (tests/test_dockerfile.py
# keeps the three the same): no analytics (a temporary server logged an ERROR for each telemetry
# call it could not send), and the temporary server's time to start on a small machine.
COMMAND_LINE_ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script.

    Exit status 0 on success; 2 for options the flow's parameters refuse (as for argparse's own
    usage errors); 1, with one `error: ...` line on stderr, for a storage.UserError met while
    running (tasks/failures.py); 128 + the signal's number when SIGTERM or Ctrl-C stopped it
    (the run then ends Cancelled). Anything else is a bug and keeps its traceback.
    """
    for name, value in COMMAND_LINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)  # before Prefect is imported: an operator's value wins
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except StoppedBySignal as stopped:
        name = signal.Signals(stopped.signal_number).name
        print(f"error: stopped by {name}; the run ends Cancelled", file=sys.stderr)
        return 128 + stopped.signal_number
    except ValidationError as error:
        print(f"error: {error.title}: {_problems(error, as_options=False)}", file=sys.stderr)
        return 1
    except UserError as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
