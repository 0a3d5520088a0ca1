"""pg_dump of the app database through the gateway, restored through the gateway
into fresh databases (created directly by the superuser), compared table by table
on the target."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, Route, running_gateway
from tests.support.pgserver import PgServer

SAMPLE_DDL = """
set role app;
create table if not exists dump_sample (
    id        integer primary key,
    doc       jsonb,
    blob      bytea,
    amount    numeric(12, 2),
    at        timestamptz,
    tags      text[],
    odd_text  text
);
insert into dump_sample values
  (1, '{"a": [1, 2, {"b": null}]}', '\\x00ff10', 12345.67, '2024-02-29 12:00:00+00',
   '{x,"y z"}', E'tab\\there\\nnewline \\\\ backslash'),
  (2, null, null, null, null, null, null),
  (3, '"scalar"', '\\x', -0.01, 'infinity', '{}', 'ünïcødé ✓')
on conflict (id) do nothing;
create or replace view customer_contacts as
  select id, full_name, email from customers where id <= 10;
create or replace function customer_count() returns bigint
  language sql stable as 'select count(*) from customers';
comment on table customers is 'personal data: handle with care';
reset role;
"""


def _public_tables(pg: PgServer, dbname: str) -> list[str]:
    out = pg.superuser_sql(
        "select tablename from pg_tables where schemaname = 'public' order by 1", dbname=dbname
    )
    return out.split()


@pytest.fixture(scope="module")
def databases(pg: PgServer) -> Iterator[tuple[str, str]]:
    pg.superuser_sql(SAMPLE_DDL)
    plain_db = f"restored_{secrets.token_hex(4)}"
    custom_db = f"restored_fc_{secrets.token_hex(4)}"
    for name in (plain_db, custom_db):
        pg.superuser_sql(f"create database {name} owner app", dbname="postgres")
    yield plain_db, custom_db
    for name in (plain_db, custom_db):
        pg.superuser_sql(f"drop database if exists {name} with (force)", dbname="postgres")


@pytest.fixture(scope="module")
def gw(
    pg: PgServer, databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    plain_db, custom_db = databases
    routes = [
        Route("appdb"),
        Route("restoredb", database=plain_db),
        Route("restorefc", database=custom_db),
    ]
    with running_gateway(pg, tmp_path_factory.mktemp("gw-dump"), routes=routes) as gateway:
        yield gateway


def _assert_same_contents(pg: PgServer, source_db: str, copy_db: str) -> None:
    tables = _public_tables(pg, source_db)
    assert "customers" in tables and "dump_sample" in tables
    assert _public_tables(pg, copy_db) == tables
    for table in tables:
        assert pg.table_digest(table, dbname=copy_db) == pg.table_digest(table, dbname=source_db), (
            table
        )
    # Non-table objects came along as well.
    assert pg.scalar("select count(*) from customer_contacts", dbname=copy_db) == "10"
    assert pg.scalar("select customer_count()", dbname=copy_db) == pg.scalar(
        "select customer_count()"
    )
    assert (
        pg.scalar("select obj_description('customers'::regclass)", dbname=copy_db)
        == "personal data: handle with care"
    )


def test_plain_dump_restored_with_psql(
    gw: Gateway, pg: PgServer, databases: tuple[str, str], tmp_path: Path
) -> None:
    plain_db, _ = databases
    dump = tmp_path / "app.sql"
    mark = pg.log_mark()
    done = gw.run_client(["pg_dump", "--no-password", "-f", str(dump), "-d", gw.conninfo()])
    assert done.returncode == 0, done.stderr
    text = dump.read_text()
    assert "CREATE TABLE public.customers" in text
    assert "COPY public.customers (id, full_name, email" in text
    # On the target: pg_dump's own queries, run as app in database app.
    dumped = pg.statements_logged(since=mark)
    assert any(re.match(r"COPY public\.customers \(.*\) TO stdout;", s) for s in dumped)

    mark = pg.log_mark()
    restore = gw.psql(
        "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), route="restoredb", timeout=180
    )
    assert restore.returncode == 0, restore.stderr
    assert re.search(
        rf"app@{plain_db} LOG:  statement: CREATE TABLE public\.customers", pg.log_text(mark)
    )
    _assert_same_contents(pg, "app", plain_db)


def test_custom_format_dump_restored_with_pg_restore(
    gw: Gateway, pg: PgServer, databases: tuple[str, str], tmp_path: Path
) -> None:
    _, custom_db = databases
    archive = tmp_path / "app.dump"
    done = gw.run_client(
        ["pg_dump", "-Fc", "--no-password", "-f", str(archive), "-d", gw.conninfo()]
    )
    assert done.returncode == 0, done.stderr
    listing = gw.run_client(["pg_restore", "-l", str(archive)])
    assert "TABLE DATA public customers" in listing.stdout
    restore = gw.run_client(
        [
            "pg_restore",
            "--exit-on-error",
            "--no-password",
            "-d",
            gw.conninfo("restorefc"),
            str(archive),
        ],
        timeout=180,
    )
    assert restore.returncode == 0, restore.stderr
    _assert_same_contents(pg, "app", custom_db)
