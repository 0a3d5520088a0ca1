"""``hoopd serve`` (the production entry point) and ``hoopd demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import trio

from hoopd.config import ConfigError, load_config
from hoopd.gateway import Listener
from hoopd.server import StartupError, serve


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def announce_ready(listeners: list[Listener]) -> None:
    """Tell whoever started us that every listener is bound (supervisors, tests)."""
    print("ready", flush=True)


def run_serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"hoopd: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        trio.run(serve, config, announce_ready)
    except (StartupError, ConfigError) as exc:
        print(f"hoopd: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    serve_parser = subparsers.add_parser("serve", help="run the gateway from a configuration file")
    serve_parser.add_argument("--config", required=True, help="path to hoopd.toml")
    serve_parser.set_defaults(func=run_serve)
