"""The `review-scoring` command: a thin face over the flows and the model store."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from model_store import ModelStoreError

__all__ = ["build_parser", "main"]


def _add_model_options(parser: argparse.ArgumentParser, params_class: type[BaseModel]) -> None:
    """One --option per field of a flow's parameter model, so the CLI and the UI form agree."""
    for name, field in params_class.model_fields.items():
        flag = "--" + name.replace("_", "-")
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
        if base is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif typing.get_origin(base) is typing.Literal:
            parser.add_argument(
                flag, dest=name, choices=list(typing.get_args(base)), default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)


def _params_from(args: argparse.Namespace, params_class: type[BaseModel]) -> Any:
    given = {
        name: getattr(args, name)
        for name in params_class.model_fields
        if getattr(args, name, None) is not None
    }
    return params_class.model_validate(given)


def build_parser() -> argparse.ArgumentParser:
    """The command line: train, score, models."""
    from flows.scoring import ScoreParams
    from flows.training import TrainParams
    from model_store.cli import add_models_parser

    parser = argparse.ArgumentParser(
        prog="review-scoring",
        description="Train, score and manage the movie-review sentiment models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="run the training flow locally")
    _add_model_options(train, TrainParams)
    score = commands.add_parser("score", help="run the scoring flow locally")
    _add_model_options(score, ScoreParams)
    add_models_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from flows.training import TrainParams, train_flow

            result = train_flow(_params_from(args, TrainParams))
            print(json.dumps(result, indent=2, default=str))
            return 0
        if args.command == "score":
            from flows.scoring import ScoreParams, score_flow

            result = score_flow(_params_from(args, ScoreParams))
            print(json.dumps(result, indent=2, default=str))
            return 0
        from flows.settings import get_settings
        from model_store.cli import run_models_command

        return run_models_command(args, Path(get_settings().model_store_root))
    except ValidationError as error:
        problems = "; ".join(
            "".join(f"--{str(part).replace('_', '-')}: " for part in problem["loc"][:1])
            + problem["msg"]
            for problem in error.errors()
        )
        print(f"error: {problems}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError, ModelStoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
