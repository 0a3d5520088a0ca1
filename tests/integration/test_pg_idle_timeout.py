"""``idle_timeout_seconds``: a session with nothing passing either way for that long is
ended (FATAL 57P05 to the client, its backend gone on the target, recorded as
``idle``); a session in use is not. Real psycopg -> hoopd -> PostgreSQL 15."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from tests.support.gateway import running_gateway, session_id_of
from tests.support.pgserver import PgServer

IDLE_SECONDS = 1.5


def _backend_alive(pg: PgServer, pid: int) -> bool:
    return pg.scalar(f"select count(*) from pg_stat_activity where pid = {pid}") == "1"


def test_an_idle_session_ends_and_a_busy_one_goes_on(pg: PgServer, tmp_path: Path) -> None:
    with running_gateway(pg, tmp_path / "gw", idle_timeout_seconds=IDLE_SECONDS) as gw:
        idle = gw.connect(application_name="idle-one")
        busy = gw.connect(application_name="busy-one")
        idle_pid = idle.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        started = time.monotonic()
        while time.monotonic() - started < IDLE_SECONDS * 2.5:
            assert busy.execute("select 1").fetchone() == (1,)
            time.sleep(IDLE_SECONDS / 5)
        with pytest.raises(psycopg.OperationalError) as ended:
            idle.execute("select 1")
        assert "without activity (idle timeout)" in str(ended.value)
        assert not _backend_alive(pg, idle_pid)
        assert busy.execute("select 2").fetchone() == (2,)
        busy.close()
        idle.close()

        by_app = {
            s["attributes"].get("application_name"): s for s in gw.sessions() if s.get("attributes")
        }
        idle_session = by_app["idle-one"]
        assert idle_session["end_reason"] == "idle timeout"
        kinds = [r["kind"] for r in gw.replay(session_id_of(idle_session))]
        assert kinds[-2:] == ["idle", "session_end"]
        assert by_app["busy-one"]["end_reason"] != "idle timeout"
