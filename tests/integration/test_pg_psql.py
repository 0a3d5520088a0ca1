"""psql through the gateway, with TLS on the client leg (sslmode=require).

Every test checks the target's side too: the PostgreSQL log (every statement is
logged), or the rows a statement wrote, read back as superuser over the unix
socket, which does not go through the gateway.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, Route, running_gateway, unique_marker
from tests.support.pgserver import PgServer


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    assert pg.tls is not None
    routes = [
        Route("appdb"),
        Route("md5db", user="md5user", password=pg.md5_password),
        Route("pwdb", user="pwuser", password=pg.cleartext_password),
        Route("verifieddb", tls="verify-full", ca_file=pg.tls.ca_file),
        Route("plaindb", tls="disable", secret_in_file=True),
    ]
    with running_gateway(pg, tmp_path_factory.mktemp("gw-psql"), routes=routes) as gateway:
        yield gateway


def test_select_returns_target_rows_and_is_logged_by_target(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("sel")
    mark = pg.log_mark()
    done = gw.psql("-At", "-c", f"select current_user, current_database(), '{marker}'")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"app|app|{marker}"
    # The gateway logged in upstream as `app`, over TLS, and the statement arrived verbatim.
    pg.wait_for_log(
        r"app@app LOG:  connection authorized: user=app database=app.*SSL enabled", since=mark
    )
    assert f"select current_user, current_database(), '{marker}'" in pg.statements_logged(
        since=mark
    )


def test_insert_lands_on_target(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("ins")
    done = gw.psql(
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        f"insert into audit_marks (marker, note) values ('{marker}', 'via psql')",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "INSERT 0 1"
    assert pg.scalar(f"select note from audit_marks where marker = '{marker}'") == "via psql"


def test_multi_statement_simple_query(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("multi")
    sql = (
        f"select 1 as one; insert into audit_marks (marker) values ('{marker}'); "
        f"select 2 as two, '{marker}' as m"
    )
    mark = pg.log_mark()
    done = gw.psql("-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
    assert done.returncode == 0, done.stderr
    # psql 15 prints the result of every statement of a multi-statement string.
    assert done.stdout.splitlines() == ["1", "INSERT 0 1", f"2|{marker}"]
    assert pg.scalar(f"select count(*) from audit_marks where marker = '{marker}'") == "1"
    # One Query message upstream carrying all three statements.
    assert sql in pg.statements_logged(since=mark)


def test_multi_statement_stops_at_first_error(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("multierr")
    sql = (
        f"insert into audit_marks (marker) values ('{marker}-a'); "
        "select 1/0; "
        f"insert into audit_marks (marker) values ('{marker}-b')"
    )
    done = gw.psql("-At", "-v", "VERBOSITY=verbose", "-c", sql)
    assert done.returncode != 0
    assert "22012" in done.stderr and "division by zero" in done.stderr
    # A multi-statement Query is one implicit transaction: PostgreSQL rolled back the first
    # insert and never ran the third.
    assert pg.scalar(f"select count(*) from audit_marks where marker like '{marker}%'") == "0"


def test_error_carries_sqlstate_position_and_hint(gw: Gateway, pg: PgServer) -> None:
    mark = pg.log_mark()
    done = gw.psql("-v", "VERBOSITY=verbose", "-c", "select fulname from customers")
    assert done.returncode == 1
    err = done.stderr
    assert 'ERROR:  42703: column "fulname" does not exist' in err
    assert "LINE 1: select fulname from customers" in err
    # The caret sits under the position the server reported (character 8).
    caret_line = err.split("LINE 1: select fulname from customers\n", 1)[1].split("\n", 1)[0]
    assert caret_line.index("^") == len("LINE 1: select ")
    assert 'HINT:  Perhaps you meant to reference the column "customers.full_name".' in err
    assert "LOCATION:" in err  # source file/line/routine fields made it through too
    pg.wait_for_log(r'app@app ERROR:  column "fulname" does not exist at character 8', since=mark)


def test_error_carries_detail_and_constraint_fields(gw: Gateway, pg: PgServer) -> None:
    done = gw.psql(
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "insert into customers (full_name, email) values ('Dup', 'customer1@example.test')",
    )
    assert done.returncode == 1
    err = done.stderr
    assert "ERROR:  23505: duplicate key value violates unique constraint" in err
    assert "DETAIL:  Key (email)=(customer1@example.test) already exists." in err
    assert "SCHEMA NAME:  public" in err
    assert "TABLE NAME:  customers" in err
    assert "CONSTRAINT NAME:  customers_email_key" in err
    assert pg.scalar("select count(*) from customers where full_name = 'Dup'") == "0"


def test_raised_exception_with_custom_fields_and_session_survives(
    gw: Gateway, pg: PgServer
) -> None:
    marker = unique_marker("after")
    script = (
        "\\set VERBOSITY verbose\n"
        "do $$ begin raise exception 'custom failure %', 7 using "
        "errcode = 'P0042', detail = 'the detail', hint = 'the hint'; end $$;\n"
        f"insert into audit_marks (marker) values ('{marker}');\n"
        f"select '{marker}' as still_here;\n"
    )
    mark = pg.log_mark()
    done = gw.psql("-At", "-f", "-", input=script)
    assert "ERROR:  P0042: custom failure 7" in done.stderr
    assert "DETAIL:  the detail" in done.stderr
    assert "HINT:  the hint" in done.stderr
    assert "CONTEXT:  PL/pgSQL function inline_code_block" in done.stderr
    # The session kept working after the error.
    assert done.stdout.strip().endswith(marker)
    assert pg.scalar(f"select count(*) from audit_marks where marker = '{marker}'") == "1"
    pg.wait_for_log(r"app@app ERROR:  custom failure 7", since=mark)


def test_notices_reach_the_client(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("notice")
    sql = (
        f"do $$ begin raise notice 'first notice %', '{marker}'; "
        "raise warning 'a warning' using detail = 'warned detail'; "
        "raise notice 'second notice'; end $$"
    )
    mark = pg.log_mark()
    done = gw.psql("-v", "ON_ERROR_STOP=1", "-c", sql)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert f"NOTICE:  first notice {marker}" in lines
    assert "WARNING:  a warning" in lines
    assert "DETAIL:  warned detail" in lines
    assert "NOTICE:  second notice" in lines
    # In the order the server raised them.
    assert lines.index(f"NOTICE:  first notice {marker}") < lines.index("WARNING:  a warning")
    assert lines.index("WARNING:  a warning") < lines.index("NOTICE:  second notice")
    assert sql in pg.statements_logged(since=mark)
    # The warning is also in the server log (log_min_messages = warning).
    pg.wait_for_log(r"app@app WARNING:  a warning", since=mark)


def _copy_rows(count: int) -> list[list[str]]:
    rows = []
    for i in range(1, count + 1):
        rows.append([str(i), f'Name "{i}", with comma', f"ünïcødé-{i}\tand tab"])
    return rows


def test_copy_in_from_file(gw: Gateway, pg: PgServer, tmp_path: Path) -> None:
    table = unique_marker("copy_in")
    rows = _copy_rows(5000)
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    done = gw.psql(
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        f"create table {table} (id int primary key, name text, note text)",
        "-c",
        f"\\copy {table} from '{source}' with (format csv)",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "COPY 5000" in done.stdout
    # The target holds exactly the file's contents.
    out = pg.superuser_psql(
        ["-c", f"copy (select * from {table} order by id) to stdout with (format csv)"]
    ).stdout
    assert list(csv.reader(io.StringIO(out))) == rows


def test_copy_in_with_a_bad_row_rolls_back_and_session_goes_on(
    gw: Gateway, pg: PgServer, tmp_path: Path
) -> None:
    table = unique_marker("copy_bad")
    source = tmp_path / "bad.csv"
    source.write_text("1,ok\n2,ok\nnot-a-number,bad\n4,ok\n")
    script = (
        f"create table {table} (id int, name text);\n"
        f"\\copy {table} from '{source}' with (format csv)\n"
        f"select 'alive-' || count(*) from {table};\n"
    )
    done = gw.psql("-At", "-f", "-", input=script, cwd=tmp_path)
    assert 'invalid input syntax for type integer: "not-a-number"' in done.stderr
    assert done.stdout.strip().endswith("alive-0")
    assert pg.scalar(f"select count(*) from {table}") == "0"


def test_copy_out_to_file(gw: Gateway, pg: PgServer, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    query = "select * from customers order by id"
    mark = pg.log_mark()
    done = gw.psql(
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        f"\\copy ({query}) to '{target}' with (format csv, header)",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "COPY 50" in done.stdout
    direct = pg.superuser_psql(["-c", f"copy ({query}) to stdout with (format csv, header)"])
    assert target.read_text() == direct.stdout
    copy_out = re.compile(
        r"COPY\s*\(\s*select \* from customers order by id\s*\)\s*TO STDOUT", re.I
    )
    assert any(copy_out.match(s) for s in pg.statements_logged(since=mark))


def test_large_result_matches_direct(gw: Gateway, pg: PgServer) -> None:
    query = "select g, md5(g::text), repeat('x', g % 50) from generate_series(1, 200000) g"
    mark = pg.log_mark()
    through = gw.psql("-At", "-v", "ON_ERROR_STOP=1", "-c", query)
    assert through.returncode == 0, through.stderr
    direct = pg.superuser_psql(["-At", "-c", query])
    assert through.stdout.count("\n") == 200000
    assert (
        hashlib.sha256(through.stdout.encode()).hexdigest()
        == hashlib.sha256(direct.stdout.encode()).hexdigest()
    )
    assert query in pg.statements_logged(since=mark)


@pytest.mark.parametrize(
    ("route", "user", "method", "ssl"),
    [
        ("appdb", "app", "scram-sha-256", "t"),
        ("md5db", "md5user", "md5", "t"),
        ("pwdb", "pwuser", "password", "t"),
        ("verifieddb", "app", "scram-sha-256", "t"),
        ("plaindb", "app", "scram-sha-256", "f"),
    ],
)
def test_upstream_authentication_methods_and_tls_modes(
    gw: Gateway, pg: PgServer, route: str, user: str, method: str, ssl: str
) -> None:
    """The gateway answers whatever the target asks for (SCRAM, MD5, cleartext) with its
    own credential, and uses TLS to the target unless the route says ``disable``."""
    mark = pg.log_mark()
    done = gw.psql(
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()",
        route=route,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{user}|{ssl}"
    pg.wait_for_log(
        rf'{user}@app LOG:  connection authenticated: identity="{user}" method={re.escape(method)}',
        since=mark,
    )
