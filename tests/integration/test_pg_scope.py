"""Token scopes through the gateway, with real psql against PostgreSQL 15.

A token scoped to read a connection runs reads; a write is refused before it reaches
the target (checked in the target's table and statement log) and the session goes
on. A token whose scope does not name the connection cannot log in to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import (
    Gateway,
    Token,
    running_gateway,
    session_id_of,
    unique_marker,
)
from tests.support.pgserver import PgServer

READER = Token("rita", ("analysts",), scope=("appdb:read",))
WRITER = Token("wes", (), scope=("app*:write",))
ELSEWHERE = Token("otto", (), scope=("reports:admin",))


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(
        pg, tmp_path_factory.mktemp("gw-scope"), tokens=[READER, WRITER, ELSEWHERE]
    ) as gateway:
        yield gateway


def test_a_read_scope_runs_reads_and_refuses_writes_before_the_target(
    gw: Gateway, pg: PgServer
) -> None:
    marker = unique_marker("scope")
    mark = pg.log_mark()
    done = gw.psql(
        "-At",
        token=READER,
        input=(
            f"insert into audit_marks (marker) values ('{marker}');\n"
            f"select 'still here {marker}';\n"
            "select pg_terminate_backend(pg_backend_pid());\n"
        ),
    )
    assert "ERROR:  hoopd: the token's scope allows read on appdb;" in done.stderr
    assert "this statement needs write" in done.stderr
    assert "this statement needs admin" in done.stderr  # the side-effect function
    assert done.stdout.strip() == f"still here {marker}"
    assert pg.audit_marks(marker) == 0
    logged = pg.statements_logged(since=mark)
    assert any(f"still here {marker}" in s for s in logged)
    assert not any("insert into audit_marks" in s and marker in s for s in logged)
    assert not any("pg_terminate_backend" in s for s in logged)


def test_a_write_scope_glob_covers_the_connection(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("wscope")
    done = gw.psql(
        "-v",
        "ON_ERROR_STOP=1",
        token=WRITER,
        input=f"insert into audit_marks (marker) values ('{marker}');\n",
    )
    assert done.returncode == 0, done.stderr
    assert pg.audit_marks(marker) == 1
    refused = gw.psql("-c", "create table scope_probe (id int)", token=WRITER)
    assert "this statement needs admin" in refused.stderr
    assert pg.scalar("select to_regclass('scope_probe') is null") == "t"


def test_a_token_scoped_elsewhere_cannot_log_in(gw: Gateway) -> None:
    done = gw.psql("-c", "select 1", token=ELSEWHERE)
    assert done.returncode != 0
    assert "password authentication failed for user" in done.stderr


def test_the_refusal_is_recorded_with_its_reason(gw: Gateway) -> None:
    marker = unique_marker("scoperec")
    gw.psql("-c", f"insert into audit_marks (marker) values ('{marker}')", token=READER)
    statements = [
        record
        for session in gw.sessions()
        for record in gw.replay(session_id_of(session))
        if record.get("kind") == "statement" and marker in str(record)
    ]
    assert len(statements) == 1, statements
    verdict = statements[0]["body"]["verdict"]
    assert verdict == {
        "action": "deny",
        "rule": None,
        "scope": True,
        "message": "the token's scope allows read on appdb; this statement needs write",
    }
