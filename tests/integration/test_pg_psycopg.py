"""psycopg 3 through the gateway: the extended protocol in its less common shapes
(binary parameters and results, pipelining, named prepared statements) and
asynchronous notifications, plus what the recording makes of them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

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


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(pg, tmp_path_factory.mktemp("gw-psycopg")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def typed_table(gw: Gateway) -> str:
    table = unique_marker("typed")
    with gw.connect() as conn:
        conn.execute(
            f"create table {table} (id int primary key, data bytea, note text, "
            "amount numeric, at timestamptz, flags bool[], big bigint)"
        )
    return table


def _statements(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r.get("kind") == "statement"]


def test_binary_parameters_and_results(gw: Gateway, pg: PgServer, typed_table: str) -> None:
    blob = bytes(range(256)) * 4
    at = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.UTC)
    values = (7, blob, "naïve ✓", Decimal("-1234567.890"), at, [True, False, None], 2**62)
    with gw.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"insert into {typed_table} values (%b, %b, %b, %b, %b, %b, %b)",
            values,
            binary=True,
        )
        assert cur.rowcount == 1
        cur.execute(
            f"select id, data, note, amount, at, flags, big from {typed_table} where id = %b",
            (7,),
            binary=True,
        )
        assert cur.pgresult is not None and cur.pgresult.fformat(1) == 1  # binary result
        row = cur.fetchone()
    assert row == values
    # What the target stored, read directly.
    stored = pg.scalar(
        "select md5(data), note, amount, at at time zone 'UTC', flags, big "
        f"from {typed_table} where id = 7"
    )
    expected_md5 = hashlib.md5(blob).hexdigest()
    assert stored == (
        f"{expected_md5}|naïve ✓|-1234567.890|2024-02-29 23:59:58.123456|{{t,f,NULL}}|{2**62}"
    )


def test_pipeline_mode_inserts(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("pipe")
    before = session_ids(gw)
    with gw.connect() as conn, conn.cursor() as cur:
        with conn.pipeline():
            for i in range(25):
                cur.execute(
                    "insert into audit_marks (marker, note) values (%s, %s)",
                    (marker, f"n{i}"),
                )
            cur.execute("select count(*) from audit_marks where marker = %s", (marker,))
        counted = cur.fetchone()
    assert counted == (25,)
    notes = pg.superuser_sql(
        f"select note from audit_marks where marker = '{marker}' order by id"
    ).split()
    assert notes == [f"n{i}" for i in range(25)]

    # Pipelined commands are recorded one by one, each result tied to its own command.
    records = gw.replay(session_id_of(wait_for_new_session(gw, before)))
    statements = {r["body"]["command"]: r["body"] for r in records if r["kind"] == "statement"}
    results = {r["body"]["command"]: r["body"] for r in records if r["kind"] == "result"}
    inserts = [c for c, s in statements.items() if s["sql"].startswith("insert")]
    assert [statements[c]["params"] for c in inserts] == [[marker, f"n{i}"] for i in range(25)]
    assert all(results[c]["tag"] == "INSERT 0 1" for c in inserts)
    [count_cmd] = [c for c, s in statements.items() if s["sql"].startswith("select count")]
    assert results[count_cmd]["tag"] == "SELECT 1"


def test_listen_notify_between_two_gateway_connections(gw: Gateway, pg: PgServer) -> None:
    channel = unique_marker("chan")
    payload = unique_marker("payload")
    mark = pg.log_mark()
    with gw.connect() as listener, gw.connect() as notifier:
        listener.execute(f"listen {channel}")
        notifier.execute("select pg_notify(%s, %s)", (channel, payload))
        # The listener is idle: the gateway must forward the asynchronous message.
        received = list(listener.notifies(timeout=10.0, stop_after=1))
        notifier_pid = notifier.execute("select pg_backend_pid()").fetchone()
    assert [(n.channel, n.payload) for n in received] == [(channel, payload)]
    # The pid in a notification is the notifying upstream backend's.
    assert notifier_pid is not None and received[0].pid == notifier_pid[0]
    logged = pg.statements_logged(since=mark)
    assert f"listen {channel}" in logged
    assert any("select pg_notify($1, $2)" in s for s in logged)


def test_prepared_statements_are_recorded_with_sql_and_parameters(
    gw: Gateway, pg: PgServer
) -> None:
    marker = unique_marker("prep")
    sql = f"select %t::int * 2, %t::text /* {marker} */"
    before = session_ids(gw)
    mark = pg.log_mark()
    with gw.connect(prepare_threshold=0) as conn:
        for i in range(40):
            row = conn.execute(sql, (str(i), f"v{i}"), prepare=True).fetchone()
            assert row == (i * 2, f"v{i}")
    # On the target: prepared once, executed 40 times by name.
    executions = re.findall(
        rf"app@app LOG:  execute (\S+): select \$1::int \* 2, \$2::text /\* {marker} \*/",
        pg.log_text(mark),
    )
    assert len(executions) == 40
    assert len(set(executions)) == 1 and executions[0] != "<unnamed>"

    session = wait_for_new_session(gw, before)
    statements = [
        s for s in _statements(gw.replay(session_id_of(session))) if marker in s.get("sql", "")
    ]
    # Every Execute is attributed to the statement text it runs, with its own parameters.
    assert [s["params"] for s in statements] == [[str(i), f"v{i}"] for i in range(40)]
    for s in statements:
        assert s["sql"] == f"select $1::int * 2, $2::text /* {marker} */"
        assert s.get("origin") == "execute"
        assert "select" in s["classification"]["kinds"]


def test_binary_parameters_are_recorded(gw: Gateway, typed_table: str) -> None:
    before = session_ids(gw)
    with gw.connect() as conn:
        conn.execute(
            f"insert into {typed_table} (id, data, note) values (%b, %b, %b)",
            (8, b"\x00\x01\xfe\xff", "bin-note"),
        )
    session = wait_for_new_session(gw, before)
    [insert] = [
        s
        for s in _statements(gw.replay(session_id_of(session)))
        if s.get("sql", "").startswith(f"insert into {typed_table}")
    ]
    # Binary-format values are recorded as bytes (base64 in JSON), exactly as sent.
    id_param, data_param, note_param = (base64.b64decode(p["base64"]) for p in insert["params"])
    assert int.from_bytes(id_param, "big", signed=True) == 8
    assert data_param == b"\x00\x01\xfe\xff"
    assert note_param == b"bin-note"
    assert typed_table in insert["classification"]["tables_written"]
    assert "insert" in insert["classification"]["kinds"]


def test_server_side_cursor_streams_rows(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("cursor")
    mark = pg.log_mark()
    with gw.connect(autocommit=False) as conn:
        with conn.cursor(name=marker) as cur:
            cur.itersize = 1000
            cur.execute("select g from generate_series(1, 20000) g")
            total = sum(row[0] for row in cur)
        conn.commit()
    assert total == 20000 * 20001 // 2
    fetched = [
        s
        for s in pg.statements_logged(since=mark)
        if s.startswith(f'FETCH FORWARD 1000 FROM "{marker}"')
    ]
    assert len(fetched) >= 20
