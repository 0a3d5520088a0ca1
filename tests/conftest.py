"""Shared fixtures: one real PostgreSQL server for the whole run; a real sshd and a
real OpenID Connect provider for each test module that asks for ``sshd`` or
``provider``."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test modules import their helpers as ``tests.support.*``; make the checkout's
# root importable however pytest was started (``pytest`` or ``python -m pytest``).
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.support.oidc import OidcProvider, running_provider  # noqa: E402
from tests.support.pgserver import (  # noqa: E402
    PG_BIN,
    PgServer,
    PgTemplate,
    init_template,
    make_shared_tempdir,
    remove_tree,
)
from tests.support.sshserver import SSHD, SshServer, running_sshd  # noqa: E402


def _postgres_available() -> bool:
    return (PG_BIN / "postgres").exists() and shutil.which("psql") is not None


@pytest.fixture(scope="session")
def pg_root() -> Iterator[Path]:
    """A directory the server's OS user can traverse, removed after the session."""
    if not _postgres_available():
        pytest.fail(f"PostgreSQL 15 binaries are required at {PG_BIN} (and psql on PATH)")
    root = make_shared_tempdir("hoopd-pg-")
    yield root
    remove_tree(root)


@pytest.fixture(scope="session")
def pg_template(pg_root: Path) -> PgTemplate:
    """initdb, once per session; servers start from copies of it."""
    return init_template(pg_root)


@pytest.fixture(scope="session")
def pg(pg_template: PgTemplate, pg_root: Path) -> Iterator[PgServer]:
    """A running PostgreSQL 15 with users ``app`` (SCRAM, owns database ``app``),
    ``md5user``, ``pwuser`` and the superuser ``postgres`` on the unix socket."""
    server = PgServer(pg_template, pg_root, "pg")
    try:
        server.start()
        server.create_sample_roles_and_schema()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A running OpenSSH sshd (key login as the target user) for one test module."""
    missing = [t for t in ("ssh", "sftp", "scp", "ssh-agent") if shutil.which(t) is None]
    if missing or not SSHD.exists():
        pytest.fail("openssh-server and openssh-client are required (packaging/system-deps.sh)")
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A running OpenID Connect provider (tests/support/oidc_provider) for one test module."""
    with running_provider(tmp_path_factory.mktemp("oidc")) as running:
        yield running
