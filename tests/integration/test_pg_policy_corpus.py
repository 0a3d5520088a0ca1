"""An evasion corpus against the shipped destructive-SQL pack, through the gateway, with real
psql (simple protocol) and psycopg (extended protocol).

Statements that must be refused are shown not to reach PostgreSQL (its statement log, and the
rows of the table they would change); harmless look-alikes must run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.gateway import REPO_ROOT, Gateway, running_gateway
from tests.support.pgserver import PgServer

# Refused by a deny rule of policies/destructive-sql (statements that rules send for approval
# are covered by test_pg_approvals.py, since they wait for a person).
MUST_BE_REFUSED = [
    "delete from corpus_t",
    "DELETE FROM corpus_t",
    "/* tidy up */ delete from corpus_t",
    "with gone as (delete from corpus_t returning *) select count(*) from gone",
    "select 1; delete from corpus_t",
    "update corpus_t set v = v + 1",
    "explain analyze delete from corpus_t where id > 0",
    "prepare wipe as delete from corpus_t; execute wipe",
    "copy corpus_t to program 'cat'",
    "copy corpus_t from '/etc/hostname'",
    "select pg_read_file('/etc/hostname')",
    "select * from pg_catalog.pg_read_file('/etc/hostname')",
    "alter system set work_mem = '1MB'",
]

MUST_RUN = [
    "select 'delete from corpus_t'",
    "select $$delete from corpus_t$$",
    "select E'delete from corpus_t\\''",
    "-- delete from corpus_t\nselect 1",
    "select count(*) from drop_log",
    "delete from corpus_t where id = -1",
    "update corpus_t set v = v where id = -1",
    "explain delete from corpus_t",
    "select 'pg_read_file'",
]


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg.superuser_sql(
        "drop table if exists corpus_t, drop_log;"
        "create table corpus_t (id int primary key, v int);"
        "insert into corpus_t select g, g from generate_series(1, 5) g;"
        "create table drop_log (id int); grant all on corpus_t, drop_log to app;"
    )
    policy_dir = tmp_path_factory.mktemp("corpus-policy")
    for rules in (REPO_ROOT / "policies" / "destructive-sql").glob("*.yaml"):
        if not rules.name.endswith(".test.yaml"):
            shutil.copy(rules, policy_dir / rules.name)
    with running_gateway(
        pg, tmp_path_factory.mktemp("gw-corpus"), policy_dir=Path(policy_dir)
    ) as gateway:
        yield gateway


def _table_state(pg: PgServer) -> str:
    return pg.superuser_sql("select id, v from corpus_t order by id").strip()


@pytest.mark.parametrize("sql", MUST_BE_REFUSED)
def test_refused_over_the_simple_protocol(gw: Gateway, pg: PgServer, sql: str) -> None:
    before, mark = _table_state(pg), pg.log_mark()
    done = gw.psql("-c", sql)
    assert done.returncode != 0
    assert "ERROR:  hoopd:" in done.stderr
    assert _table_state(pg) == before
    assert not [s for s in pg.statements_logged(since=mark) if "corpus_t" in s or "pg_read" in s]


@pytest.mark.parametrize("sql", [s for s in MUST_BE_REFUSED if ";" not in s])
def test_refused_over_the_extended_protocol(gw: Gateway, pg: PgServer, sql: str) -> None:
    before, mark = _table_state(pg), pg.log_mark()
    with gw.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql)
        assert conn.execute("select 1").fetchone() == (1,)  # still usable
    assert _table_state(pg) == before
    assert not [s for s in pg.statements_logged(since=mark) if "corpus_t" in s or "pg_read" in s]


@pytest.mark.parametrize("sql", MUST_RUN)
def test_look_alikes_run(gw: Gateway, pg: PgServer, sql: str) -> None:
    before = _table_state(pg)
    done = gw.psql("-v", "ON_ERROR_STOP=1", "-c", sql)
    assert done.returncode == 0, done.stderr
    assert _table_state(pg) == before
