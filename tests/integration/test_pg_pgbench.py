"""pgbench through the gateway: initialisation (COPY, DDL, VACUUM) and bounded runs
in each query mode (simple, extended, prepared) with several concurrent clients."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.pgserver import PgServer

CLIENTS = 4
TRANSACTIONS = 200


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(pg, tmp_path_factory.mktemp("gw-pgbench")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def initialised(gw: Gateway, pg: PgServer) -> Gateway:
    mark = pg.log_mark()
    done = gw.run_client(["pgbench", "-i", "-s", "1", gw.conninfo()], timeout=180)
    assert done.returncode == 0, done.stderr
    assert "done in" in done.stderr
    # The target has the tables, owned by the upstream user, with the scale-1 row counts.
    assert pg.scalar("select count(*) from pgbench_accounts") == "100000"
    assert pg.scalar("select count(*) from pgbench_branches") == "1"
    assert pg.scalar("select count(*) from pgbench_tellers") == "10"
    assert (
        pg.scalar("select tableowner from pg_tables where tablename = 'pgbench_accounts'") == "app"
    )
    logged = pg.statements_logged(since=mark)
    assert any(s.startswith("copy pgbench_accounts from stdin") for s in logged), logged[:20]
    assert any(s.startswith("vacuum analyze pgbench_") for s in logged)
    return gw


def _processed(output: str) -> tuple[int, int]:
    found = re.search(r"number of transactions actually processed: (\d+)/(\d+)", output)
    assert found is not None, output
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize(
    ("mode", "logged_as"),
    [
        ("simple", r"statement: SELECT abalance FROM pgbench_accounts WHERE aid = \d+;"),
        ("extended", r"execute <unnamed>: SELECT abalance FROM pgbench_accounts WHERE aid = \$1;"),
        ("prepared", r"execute P_\d+: SELECT abalance FROM pgbench_accounts WHERE aid = \$1;"),
    ],
)
def test_select_only_run(initialised: Gateway, pg: PgServer, mode: str, logged_as: str) -> None:
    mark = pg.log_mark()
    done = initialised.run_client(
        [
            "pgbench",
            "-n",
            "-S",
            "-M",
            mode,
            "-c",
            str(CLIENTS),
            "-j",
            "2",
            "-t",
            str(TRANSACTIONS),
            initialised.conninfo(),
        ],
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _processed(done.stdout) == (CLIENTS * TRANSACTIONS, CLIENTS * TRANSACTIONS)
    assert f"query mode: {mode}" in done.stdout
    # Every transaction's statement reached the target as user app, in the wire form of
    # the chosen query mode.
    log = pg.log_text(mark)
    arrived = re.findall(rf"\[(\d+)\] app@app LOG:  {logged_as}", log)
    assert len(arrived) == CLIENTS * TRANSACTIONS
    # Each client had its own upstream session (its own backend PID).
    assert len(set(arrived)) == CLIENTS


def test_read_write_run_in_prepared_mode(initialised: Gateway, pg: PgServer) -> None:
    history_before = int(pg.scalar("select count(*) from pgbench_history"))
    done = initialised.run_client(
        ["pgbench", "-n", "-M", "prepared", "-c", "2", "-t", "50", initialised.conninfo()],
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _processed(done.stdout) == (100, 100)
    # Each TPC-B-like transaction inserts one history row on the target.
    assert int(pg.scalar("select count(*) from pgbench_history")) == history_before + 100
    # Balances stay consistent: the sum over branches equals the sum of all deltas.
    assert (
        pg.scalar(
            "select (select sum(bbalance) from pgbench_branches) = "
            "(select coalesce(sum(delta), 0) from pgbench_history)"
        )
        == "t"
    )
