"""Which data dir a recording command reads: flag, then config file, then environment."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

ENV_VAR: Final = "HOOPD_DATA_DIR"
DEFAULT: Final = Path("hoopd-data")


class DataDirError(Exception):
    """The configuration file named could not be used; the message says why."""


def resolve_data_dir(
    data_dir: str | None,
    config: str | None,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """``--data-dir``; else ``[gateway] data_dir`` from ``--config`` (relative to
    the file's directory); else ``$HOOPD_DATA_DIR``; else ``./hoopd-data``."""
    if data_dir:
        return Path(data_dir)
    if config:
        path = Path(config)
        try:
            with path.open("rb") as file:
                settings = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DataDirError(f"cannot read {path}: {exc}") from exc
        gateway = settings.get("gateway", {})
        value = gateway.get("data_dir") if isinstance(gateway, dict) else None
        if value is not None:
            if not isinstance(value, str):
                raise DataDirError(f"{path}: [gateway] data_dir must be a string")
            return path.parent / value  # as the gateway reads it: no ~ expansion
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    return DEFAULT
