"""Query cancellation through the gateway.

The client only knows the gateway's BackendKeyData; the gateway has to map a
CancelRequest carrying that key to the right upstream backend and send the
target's own key there. Each test shows the cancel on the target's side: the log
line "canceling statement due to user request" for the sleeping statement.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.support.gateway import Gateway, running_gateway, unique_marker
from tests.support.pgserver import PgServer
from tests.support.pgwire import RawConnection, cancel_request

QUICKLY_SECONDS = 5.0


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(pg, tmp_path_factory.mktemp("gw-cancel")) as gateway:
        yield gateway


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


@contextmanager
def sleepers_stopped_afterwards(pg: PgServer, *markers: str) -> Iterator[None]:
    """If a test fails midway, end its 30 s sleeps on the target (as superuser) so the
    failure does not hold up the rest of the suite."""
    try:
        yield
    finally:
        for marker in markers:
            pg.cancel_backends(marker)


def _sleep_sql(marker: str) -> str:
    return f"select pg_sleep(30) /* {marker} */"


def _run_sleep(conn: psycopg.Connection[Any], marker: str) -> BaseException | None:
    try:
        conn.execute(_sleep_sql(marker))
    except psycopg.Error as exc:
        return exc
    return None


def _assert_target_canceled(pg: PgServer, marker: str, since: int) -> None:
    pg.wait_for_log(
        r"app@app ERROR:  canceling statement due to user request\n"
        rf"\S+ \S+ \S+ \[\d+\] app@app STATEMENT:  select pg_sleep\(30\) /\* {marker} \*/",
        since=since,
    )


def _assert_canceled(future: Future[BaseException | None]) -> None:
    exc = future.result(timeout=QUICKLY_SECONDS)
    assert isinstance(exc, psycopg.errors.QueryCanceled), repr(exc)
    assert exc.sqlstate == "57014"


@pytest.mark.parametrize("method", ["cancel_safe", "cancel"])
def test_psycopg_cancel(gw: Gateway, pg: PgServer, pool: ThreadPoolExecutor, method: str) -> None:
    """``cancel_safe`` (libpq >= 17) sends the CancelRequest over TLS like the original
    connection and reports failure if the exchange does not end cleanly; the legacy
    ``cancel`` sends it in plaintext and reports nothing. Both must reach the target, and
    neither may report an error to the application."""
    marker = unique_marker(method)
    mark = pg.log_mark()
    cancel_error: psycopg.Error | None = None
    with gw.connect() as conn, sleepers_stopped_afterwards(pg, marker):
        future = pool.submit(_run_sleep, conn, marker)
        pg.wait_until_active(marker)
        started = time.monotonic()
        try:
            getattr(conn, method)()
        except psycopg.Error as exc:
            cancel_error = exc
        _assert_canceled(future)
        assert time.monotonic() - started < QUICKLY_SECONDS
        # The session is still usable after the cancel.
        assert conn.execute("select 'after-cancel'").fetchone() == ("after-cancel",)
    _assert_target_canceled(pg, marker, mark)
    assert cancel_error is None, f"the cancel took effect, but {method}() raised: {cancel_error}"


def test_psql_sigint_cancels_running_query(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("psql")
    mark = pg.log_mark()
    proc = subprocess.Popen(
        ["psql", "-X", "-d", gw.conninfo(), "-c", _sleep_sql(marker)],
        env=gw.client_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pg.wait_until_active(marker)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=QUICKLY_SECONDS)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        pg.cancel_backends(marker)
    assert proc.returncode == 1
    assert "Cancel request sent" in err
    assert "ERROR:  canceling statement due to user request" in err
    assert elapsed < QUICKLY_SECONDS
    _assert_target_canceled(pg, marker, mark)


def test_cancel_reaches_only_its_own_session(
    gw: Gateway, pg: PgServer, pool: ThreadPoolExecutor
) -> None:
    # The plaintext cancel path, so that routing is tested on its own (see above for TLS).
    first, second = unique_marker("first"), unique_marker("second")
    mark = pg.log_mark()
    with (
        gw.connect() as conn_a,
        gw.connect() as conn_b,
        sleepers_stopped_afterwards(pg, first, second),
    ):
        future_a = pool.submit(_run_sleep, conn_a, first)
        future_b = pool.submit(_run_sleep, conn_b, second)
        pg.wait_until_active(first)
        pg.wait_until_active(second)
        conn_b.cancel()
        _assert_canceled(future_b)
        _assert_target_canceled(pg, second, mark)
        # The other session's statement is still running on the target.
        assert pg.active_backends(first), "cancel for session B stopped session A's query"
        assert not future_a.done()
        conn_a.cancel()
        _assert_canceled(future_a)
    _assert_target_canceled(pg, first, mark)


def test_cancel_with_a_forged_key_does_nothing(
    gw: Gateway, pg: PgServer, pool: ThreadPoolExecutor
) -> None:
    marker = unique_marker("forged")
    mark = pg.log_mark()
    with gw.connect() as conn, sleepers_stopped_afterwards(pg, marker):
        future = pool.submit(_run_sleep, conn, marker)
        [backend_pid] = pg.wait_until_active(marker)
        # Guess keys: the upstream backend's real PID with made-up secrets, and zeros.
        for pid, key in ((backend_pid, 12345), (0, 0), (backend_pid, -1)):
            raw = RawConnection("127.0.0.1", gw.ports["appdb"])
            try:
                raw.send(cancel_request(pid, key))
                raw.read_until_closed(timeout=5.0)  # no answer is ever sent to a cancel
            finally:
                raw.close()
        # The gateway closed those connections; the target's query is untouched.
        assert pg.active_backends(marker) == [backend_pid]
        assert not future.done()
        conn.cancel()
        _assert_canceled(future)
    log = pg.log_text(mark)
    canceled = re.findall(
        rf"canceling statement due to user request\n.*STATEMENT:  .*{marker}", log
    )
    assert len(canceled) == 1
