"""Policy refusals through the gateway, with real psql and psycopg against PostgreSQL 15.

A refused statement must not reach the target (checked in the target's statement log
and in the tables it would have changed), the client gets a 42501 ERROR naming the
rule, and the session stays usable. Refusals are recorded with their verdict.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.gateway import (
    Gateway,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.pgserver import PgServer

POLICY = """\
rules:
  - name: no-drop
    match:
      kinds: [drop]
    action: deny
    message: dropping tables is not allowed through this gateway
  - name: no-unscoped-delete
    match:
      kinds: [delete]
      where_absent: true
    action: deny
    message: DELETE needs a WHERE clause
  - name: everything-else
    match: {}
    action: allow
"""

# The same, plus a rule that refuses statements mentioning the table `reload_probe`.
POLICY_AFTER_RELOAD = (
    POLICY
    + """\
  - name: no-reload-probe
    match:
      tables: [reload_probe]
    action: deny
    message: reload_probe is off limits now
"""
)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "rules.yaml").write_text(POLICY)
    return directory


@pytest.fixture(scope="module")
def gw(
    pg: PgServer, tmp_path_factory: pytest.TempPathFactory, policy_dir: Path
) -> Iterator[Gateway]:
    pg.superuser_sql(
        "create table if not exists app_victim (id int); grant all on app_victim to app;"
        "create table if not exists reload_probe (id int); grant all on reload_probe to app;"
    )
    with running_gateway(
        pg, tmp_path_factory.mktemp("gw-policy"), policy_dir=policy_dir
    ) as gateway:
        yield gateway


def test_denied_statement_never_reaches_the_target_and_the_session_goes_on(
    gw: Gateway, pg: PgServer
) -> None:
    marker = unique_marker("after")
    mark = pg.log_mark()
    done = gw.psql("-At", input=f"drop table app_victim;\nselect '{marker}';\n")
    assert "ERROR:  hoopd: dropping tables is not allowed through this gateway" in done.stderr
    assert 'rule "no-drop"' in done.stderr
    assert done.stdout.strip() == marker  # the same session answered the next statement
    assert pg.scalar("select to_regclass('app_victim') is not null") == "t"
    logged = pg.statements_logged(since=mark)
    assert any(marker in s for s in logged)
    assert not any("drop table" in s.lower() for s in logged)


def test_a_refused_multi_statement_string_runs_none_of_it(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("multi")
    done = gw.psql(
        "-c", f"insert into audit_marks (marker) values ('{marker}'); delete from app_victim"
    )
    assert done.returncode != 0
    assert "DELETE needs a WHERE clause" in done.stderr
    assert pg.audit_marks(marker) == 0


def test_look_alikes_pass(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("alike")
    done = gw.psql(
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        input=(
            "select 'drop table app_victim';\n"
            f"insert into audit_marks (marker) values ('{marker}');\n"
            f"delete from audit_marks where marker = '{marker}-none';\n"
        ),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "drop table app_victim"
    assert pg.audit_marks(marker) == 1


def test_extended_protocol_refusal_keeps_the_connection_usable(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("ext")
    mark = pg.log_mark()
    with gw.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("delete from audit_marks")
        assert "DELETE needs a WHERE clause" in str(refused.value)
        # Parameters travel in Bind; the next Execute on the same connection runs.
        conn.execute("insert into audit_marks (marker) values (%s)", (marker,))
        row = conn.execute("select count(*) from audit_marks where marker = %s", (marker,))
        assert row.fetchone() == (1,)
        # Refused inside a pipeline of several statements: the others still run.
        with conn.pipeline():
            conn.execute("insert into audit_marks (marker, note) values (%s, 'p1')", (marker,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            conn.execute("drop table app_victim")
        assert pg.audit_marks(marker) == 2
    logged = pg.statements_logged(since=mark)
    assert not any(s.lower().startswith("delete from audit_marks") for s in logged)
    assert not any("drop table" in s.lower() for s in logged)
    assert pg.scalar("select to_regclass('app_victim') is not null") == "t"


def test_refusal_is_recorded_with_its_verdict(gw: Gateway, pg: PgServer) -> None:
    before = session_ids(gw)
    done = gw.psql("-c", "drop table app_victim")
    assert done.returncode != 0
    session = wait_for_new_session(gw, before)
    records = gw.replay(session_id_of(session))
    statements = [r for r in records if r["kind"] == "statement"]
    assert statements[-1]["body"]["verdict"] == {
        "action": "deny",
        "rule": "no-drop",
        "message": "dropping tables is not allowed through this gateway",
    }
    number = statements[-1]["body"]["command"]
    results = [r for r in records if r["kind"] == "result" and r["body"].get("command") == number]
    assert results and results[0]["body"]["error"]["code"] == "42501"
    assert gw.audit_verify().returncode == 0


def test_policy_change_applies_to_open_sessions_without_dropping_them(
    gw: Gateway, pg: PgServer, policy_dir: Path
) -> None:
    with gw.connect() as conn:
        conn.execute("select count(*) from reload_probe")
        (policy_dir / "rules.yaml").write_text(POLICY_AFTER_RELOAD)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    conn.execute("select count(*) from reload_probe")
                except psycopg.errors.InsufficientPrivilege as refused:
                    assert "reload_probe is off limits now" in str(refused)
                    break
                assert time.monotonic() < deadline, "the new policy was not picked up"
                time.sleep(0.2)
            # A broken policy file leaves the last good one in force.
            (policy_dir / "rules.yaml").write_text("rules: [ {name: broken, action: maybe} ]\n")
            gw.wait_for_stderr("did not load; the previous policy stays in force", timeout=20)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select count(*) from reload_probe")
            assert conn.execute("select 1").fetchone() == (1,)
        finally:
            (policy_dir / "rules.yaml").write_text(POLICY)


def test_a_refused_statement_is_refused_when_it_is_prepared(gw: Gateway, pg: PgServer) -> None:
    before = session_ids(gw)
    mark = pg.log_mark()
    with gw.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("drop table app_victim", prepare=True)  # Parse of a named statement
        assert "dropping tables is not allowed" in str(refused.value)
        assert conn.execute("select 1", prepare=True).fetchone() == (1,)
    assert not any("drop table" in s.lower() for s in pg.statements_logged(since=mark))
    assert pg.scalar("select to_regclass('app_victim') is not null") == "t"
    records = gw.replay(session_id_of(wait_for_new_session(gw, before)))
    refused_at_parse = [
        r["body"] for r in records if r["kind"] == "statement" and r["body"]["origin"] == "parse"
    ]
    assert [body["verdict"]["rule"] for body in refused_at_parse] == ["no-drop"]


HIDDEN_DROP = "SELECT 'x\\' , $$' ; DROP TABLE {table}; -- $$"


def test_a_statement_hidden_by_turning_standard_strings_off_is_refused(
    gw: Gateway, pg: PgServer
) -> None:
    # The trick is real: straight to PostgreSQL, the SELECT's text drops the table.
    pg.superuser_sql("create table scs_direct (id int); alter table scs_direct owner to app;")
    with psycopg.connect(pg.dsn("app", pg.app_password), autocommit=True) as direct:
        direct.pgconn.exec_(b"SET standard_conforming_strings = off")
        direct.pgconn.exec_(HIDDEN_DROP.format(table="scs_direct").encode())
    assert pg.scalar("select to_regclass('scs_direct') is null") == "t"

    # Through the gateway, the policy's no-drop rule sees the DROP and refuses it.
    mark = pg.log_mark()
    with gw.connect() as conn:
        conn.pgconn.exec_(b"SET standard_conforming_strings = off")
        refused = conn.pgconn.exec_(HIDDEN_DROP.format(table="app_victim").encode())
        assert refused.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42501"
        assert b"dropping tables is not allowed" in (refused.error_message or b"")
        assert conn.execute("select 1").fetchone() == (1,)  # the session goes on
    assert pg.scalar("select to_regclass('app_victim') is not null") == "t"
    assert not any("drop table" in s.lower() for s in pg.statements_logged(since=mark))
