"""Telling every gateway that shares a token store that a revocation was written.

Placeholder interface; the implementation lands with live-session revocation.
"""

from __future__ import annotations

from pathlib import Path


def announce(store_dir: Path) -> None:
    """Wake every gateway process using the store in ``store_dir`` so it ends the
    live sessions of newly revoked tokens. Never raises; call after the revocation
    is committed to the store."""
    del store_dir
