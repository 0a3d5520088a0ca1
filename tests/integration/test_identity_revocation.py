"""Revocation end to end: two gateway processes share one token store; real psql
sessions run `pg_sleep` on PostgreSQL 15 while a token is revoked.

What a user sees: revoking a token ends every live session of it and of the tokens
exchanged from it, on both gateways, with a FATAL saying why, and the statements
they were running stop on the target; unrelated sessions go on; the revoked tokens
cannot log in again or be exchanged; the recordings say what happened. Revoking an
actor, a subject or a static root token does the same for what it names; a token's
holder may revoke what was exchanged from it through the admin API, and nobody else
may. A session also ends, on the target too, when its token expires.

Elapsed times (from the revocation being started and from its commit to psql exiting,
and to the target's backend being seen gone) are printed, not asserted.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hoopd.tokens.store import TokenStore
from tests.support.gateway import (
    Gateway,
    Token,
    gateway_token_id,
    jwt_claims,
    running_gateway,
    session_id_of,
    unique_marker,
)
from tests.support.pgserver import Completed, PgServer
from tests.support.ports import free_port

ALICE = Token("alice", ("dev",), scope=("appdb:write",))
BOB = Token("bob", ("dev",), scope=("appdb:read",))
CAROL = Token("carol", ("dev",), scope=("appdb:read",))
DAVE = Token("dave", ("dev",), scope=("appdb:read",))
ADMIN = Token("root-admin", ("hoopd-admins",), scope=("appdb:read",))
END_DEADLINE_SECONDS = 15.0
SLEEP_SQL = "select pg_sleep(60) /* {marker} */"


@dataclass
class Pair:
    """Two gateways sharing one token and approvals store; each has its own data dir."""

    a: Gateway
    b: Gateway
    store: Path

    def last_revoked_at(self) -> float:
        """When the newest revocation was committed (wall clock, from the store)."""
        with TokenStore.open(self.store) as store:
            return store.revocations_since(0)[-1].revoked_at

    def revoke(self, *args: str) -> tuple[Completed, float]:
        """``hoopd revoke ARGS --config <a's>``; its result and when it was started."""
        started = time.monotonic()
        done = self.a.cli("revoke", *args, "--config", str(self.a.config_path))
        print(f"hoopd revoke {args[0]}: the command ran {time.monotonic() - started:.3f}s")
        return done, started


@pytest.fixture(scope="module")
def pair(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    store = tmp_path_factory.mktemp("shared-token-store")
    common: dict[str, Any] = {
        "tokens": [ALICE, BOB, CAROL, DAVE, ADMIN],
        "approvals_store_dir": store,
        "identity_store_dir": store,
        "admin_port": None,
        "auth_failure_delay_seconds": 0.1,  # the tests try many refused logins
    }
    with (
        running_gateway(pg, tmp_path_factory.mktemp("gw-rev-a"), **common) as a,
        running_gateway(
            pg, tmp_path_factory.mktemp("gw-rev-b"), **(common | {"admin_port": free_port()})
        ) as b,
    ):
        yield Pair(a, b, store)


class Sleeper:
    """A psql running ``pg_sleep(60)`` through a gateway, tagged with a marker (in the
    statement and as application_name) so the target's backend can be found."""

    def __init__(self, gw: Gateway, token: str, label: str) -> None:
        self.label = label
        self.marker = unique_marker(label.replace("-", "_"))
        self.proc = subprocess.Popen(
            ["psql", "-X", "-d", gw.conninfo(application_name=self.marker),
             "-c", SLEEP_SQL.format(marker=self.marker)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=gw.client_env(token),
        )  # fmt: skip
        self.exited_at: float | None = None
        self.exited_wall = 0.0
        self.ended_after: float | None = None
        self.stderr = ""
        # Its own thread notes the moment psql exits, whatever the test is doing then.
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        self.proc.wait()
        self.exited_at = time.monotonic()
        self.exited_wall = time.time()

    def stop(self, pg: PgServer) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)
        pg.cancel_backends(self.marker)


def _wait_ended(sleepers: Sequence[Sleeper], since: float) -> None:
    """Wait until every psql exits (bounded); note how long after ``since`` each did."""
    deadline = since + END_DEADLINE_SECONDS
    for s in sleepers:
        s._waiter.join(max(deadline - time.monotonic(), 0.0))
        if s.exited_at is not None:
            s.ended_after = s.exited_at - since
            s.stderr = s.proc.communicate(timeout=10)[1]


def _wait_backends_gone(pg: PgServer, sleepers: Sequence[Sleeper], since: float) -> list[float]:
    """Poll pg_stat_activity until no backend runs a sleeper's marker; elapsed times."""
    gone: list[float] = []
    for s in sleepers:
        deadline = since + END_DEADLINE_SECONDS
        while pg.active_backends(s.marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pg.active_backends(s.marker), f"{s.label}: pg_sleep still runs on the target"
        gone.append(time.monotonic() - since)
    return gone


def _report(
    what: str, sleepers: Sequence[Sleeper], gone: Sequence[float], committed: float
) -> None:
    """Print when each psql exited: after the revocation was started, and after it was
    committed to the store; and by when its statement was gone from the target."""
    for s, target in zip(sleepers, gone, strict=True):
        client = (
            "did not end"
            if s.ended_after is None
            else f"{s.ended_after:.3f}s after the revocation was started"
            f" ({s.exited_wall - committed:.3f}s after its commit)"
        )
        print(
            f"{what}: {s.label}: psql exited {client};"
            f" pg_sleep gone from the target by {target:.3f}s"
        )


def _refused_login(gw: Gateway, token: str) -> None:
    error = gw.login_error(token)
    assert error is not None, "a revoked token logged in"
    assert error["code"] == "28P01", error
    done = gw.psql("-c", "select 1", token=token)
    assert done.returncode != 0
    assert "password authentication failed" in done.stderr


def _session_of(gw: Gateway, marker: str) -> dict[str, Any]:
    (session,) = [s for s in gw.sessions() if s["attributes"].get("application_name") == marker]
    return session


def _assert_recorded_revoked(gw: Gateway, marker: str, token_id: str) -> None:
    session = _session_of(gw, marker)
    assert session["state"] == "ended"
    assert session["end_reason"] == "token revoked"
    records = gw.replay(session_id_of(session))
    revoked = [r for r in records if r["kind"] == "revoked"]
    assert len(revoked) == 1, [r["kind"] for r in records]
    assert token_id in revoked[0]["body"]["message"]
    assert any(r["kind"] == "statement" and marker in str(r["body"]) for r in records)
    assert records[-1]["kind"] == "session_end"
    assert records[-1]["body"]["reason"] == "token revoked"


def test_revoking_a_token_ends_it_and_its_delegates_on_both_gateways(
    pair: Pair, pg: PgServer
) -> None:
    a, b = pair.a, pair.b
    c1 = a.exchanged(ALICE, "--scope", "appdb:read", "--actor", "ci-job")
    c2 = b.exchanged(c1, "--actor", "sub-agent")  # through the other gateway's config
    u = b.exchanged(BOB, "--actor", "reporter")
    c1_id, c2_id = gateway_token_id(c1), gateway_token_id(c2)
    sleepers = [Sleeper(a, c1, "c1-on-a"), Sleeper(b, c2, "c2-on-b")]
    unrelated = b.connect(token=u, application_name="unrelated")
    idle = a.connect(token=c2, application_name="idle-delegate")
    try:
        for s in sleepers:
            pg.wait_until_active(s.marker)
        assert unrelated.execute("select 'before'").fetchone() == ("before",)
        assert idle.execute("select 'idle before'").fetchone() == ("idle before",)

        done, revoked_at = pair.revoke(c1_id, "--reason", "leaked in a CI log")
        assert done.returncode == 0, done.stderr
        assert f"Revoked token {c1_id}" in done.stdout
        assert f"Also revoked, as exchanged from it: {c2_id}" in done.stdout

        _wait_ended(sleepers, revoked_at)
        gone = _wait_backends_gone(pg, sleepers, revoked_at)
        _report("revoke token", sleepers, gone, pair.last_revoked_at())
        for s in sleepers:
            assert s.ended_after is not None, f"{s.label}: psql still running"
            assert s.proc.returncode != 0
            assert "FATAL:  hoopd: " in s.stderr
            assert f"token {c1_id} was revoked by cli:" in s.stderr
            assert "leaked in a CI log" in s.stderr

        # A session of C2 that was idle meanwhile finds itself ended at its next statement.
        with pytest.raises(psycopg.OperationalError, match=f"token {c1_id} was revoked"):
            idle.execute("select 'idle after'")
        # The unrelated session goes on, and the root token still connects.
        assert unrelated.execute("select 'after'").fetchone() == ("after",)
        root = a.psql("-At", "-c", "select 'root ok'", token=ALICE)
        assert root.stdout.strip() == "root ok", root.stderr
    finally:
        unrelated.close()
        idle.close()
        for s in sleepers:
            s.stop(pg)

    for gw in (a, b):
        _refused_login(gw, c1)
        _refused_login(gw, c2)
    refused = b.exchange(c2, "--scope", "appdb:read")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "invalid_request" in refused.stderr and "revoked" in refused.stderr
    _assert_recorded_revoked(a, sleepers[0].marker, c1_id)
    _assert_recorded_revoked(b, sleepers[1].marker, c1_id)


def test_revoking_an_actor_ends_only_the_sessions_naming_it(pair: Pair, pg: PgServer) -> None:
    a, b = pair.a, pair.b
    parent = a.exchanged(ALICE, "--scope", "appdb:read", "--actor", "batch-job")
    agent = a.exchanged(parent, "--actor", "sub-agent")
    sleepers = [Sleeper(b, agent, "agent-on-b")]
    keeps = Sleeper(a, parent, "parent-on-a")
    try:
        for s in (*sleepers, keeps):
            pg.wait_until_active(s.marker)
        done, revoked_at = pair.revoke("--actor", "sub-agent")
        assert done.returncode == 0, done.stderr
        assert "Revoked the tokens naming actor sub-agent issued so far" in done.stdout
        _wait_ended(sleepers, revoked_at)
        gone = _wait_backends_gone(pg, sleepers, revoked_at)
        _report("revoke --actor", sleepers, gone, pair.last_revoked_at())
        assert sleepers[0].ended_after is not None
        assert "actor sub-agent was revoked by cli:" in sleepers[0].stderr
        # The token one hop up names no revoked actor: its statement still runs.
        assert keeps.proc.poll() is None
        assert pg.active_backends(keeps.marker)
    finally:
        for s in (*sleepers, keeps):
            s.stop(pg)
    _refused_login(b, agent)
    assert a.psql("-c", "select 1", token=parent).returncode == 0


def test_revoking_a_subject_ends_its_sessions_and_spares_others(pair: Pair, pg: PgServer) -> None:
    a, b = pair.a, pair.b
    delegate = a.exchanged(CAROL, "--actor", "nightly")
    other = a.exchanged(BOB, "--actor", "nightly")
    sleepers = [Sleeper(a, delegate, "carol-on-a"), Sleeper(b, CAROL.value, "carol-root-on-b")]
    keeps = Sleeper(b, other, "bob-on-b")
    try:
        for s in (*sleepers, keeps):
            pg.wait_until_active(s.marker)
        done, revoked_at = pair.revoke("--subject", "carol", "--reason", "left the company")
        assert done.returncode == 0, done.stderr
        _wait_ended(sleepers, revoked_at)
        gone = _wait_backends_gone(pg, sleepers, revoked_at)
        _report("revoke --subject", sleepers, gone, pair.last_revoked_at())
        for s in sleepers:
            assert s.ended_after is not None, f"{s.label}: psql still running"
            assert "subject carol was revoked by cli:" in s.stderr
            assert "left the company" in s.stderr
        assert keeps.proc.poll() is None and pg.active_backends(keeps.marker)
    finally:
        for s in (*sleepers, keeps):
            s.stop(pg)
    _refused_login(a, delegate)
    # A static token has no issue time, so it counts as issued before the revocation.
    _refused_login(b, CAROL.value)


def test_a_holder_revokes_its_delegates_through_the_admin_api(pair: Pair, pg: PgServer) -> None:
    a, b = pair.a, pair.b
    c1 = a.exchanged(ALICE, "--scope", "appdb:read", "--actor", "api-job")
    c2 = a.exchanged(c1, "--actor", "api-helper")
    stranger = a.exchanged(BOB, "--actor", "api-job")
    c1_id, c2_id = gateway_token_id(c1), gateway_token_id(c2)

    def post(bearer: str, body: str) -> tuple[int, Any]:
        return b.curl(
            "-X", "POST", "-H", f"Authorization: Bearer {bearer}",
            "-H", "Content-Type: application/json", "-d", body, "/v1/revocations",
        )  # fmt: skip

    # Someone else's token, and the delegate itself reaching for its parent: 403.
    status, body = post(stranger, f'{{"token_id": "{c1_id}"}}')
    assert status == 403, body
    status, body = post(c2, f'{{"token_id": "{c1_id}"}}')
    assert status == 403, body
    status, body = post(c1, '{"actor": "api-helper"}')
    assert status == 403, body
    assert b.psql("-c", "select 1", token=c2).returncode == 0  # nothing was revoked

    sleeper = Sleeper(a, c2, "api-helper-on-a")
    try:
        pg.wait_until_active(sleeper.marker)
        revoked_at = time.monotonic()
        status, body = post(c1, f'{{"token_id": "{c2_id}", "reason": "job finished"}}')
        assert status == 201, body
        revocation = body["revocation"]
        assert (revocation["kind"], revocation["value"]) == ("token", c2_id)
        assert revocation["revoked_by"] == f"api-job for alice ({c1_id})"
        _wait_ended([sleeper], revoked_at)
        gone = _wait_backends_gone(pg, [sleeper], revoked_at)
        _report("POST /v1/revocations", [sleeper], gone, pair.last_revoked_at())
        assert sleeper.ended_after is not None
        assert "job finished" in sleeper.stderr
    finally:
        sleeper.stop(pg)
    _refused_login(a, c2)
    assert a.psql("-c", "select 1", token=c1).returncode == 0  # the holder's own token stays
    # Without a bearer token the route is closed.
    status, _ = b.curl("-X", "POST", "-d", f'{{"token_id": "{c1_id}"}}', "/v1/revocations")
    assert status == 401


def test_a_token_minted_just_after_an_actor_revocation_is_valid(pair: Pair) -> None:
    b = pair.b
    # Early in a wall-clock second, and through the admin API (milliseconds each), so
    # the revocation and the mint after it fall in the same second.
    while time.time() % 1 > 0.5:
        time.sleep(0.01)
    status, body = b.curl(
        "-X", "POST", "-H", f"Authorization: Bearer {ADMIN.value}",
        "-H", "Content-Type: application/json", "-d", '{"actor": "fresh-actor"}',
        "/v1/revocations",
    )  # fmt: skip
    assert status == 201, body
    status, body = b.curl(
        "-X", "POST",
        "--data-urlencode", "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        "--data-urlencode", f"subject_token={BOB.value}",
        "--data-urlencode", "subject_token_type=urn:ietf:params:oauth:token-type:access_token",
        "--data-urlencode", "actor=fresh-actor",
        "/v1/token",
    )  # fmt: skip
    assert status == 200, body
    assert b.login_error(body["access_token"]) is None


def test_revoking_a_static_root_token_ends_every_session_exchanged_from_it(
    pair: Pair, pg: PgServer
) -> None:
    a, b = pair.a, pair.b
    delegate = b.exchanged(DAVE, "--actor", "helper")
    sleepers = [Sleeper(a, delegate, "dave-helper-on-a"), Sleeper(b, DAVE.value, "dave-on-b")]
    try:
        for s in sleepers:
            pg.wait_until_active(s.marker)
        static_id = "st:" + DAVE.sha256[:12]
        done, revoked_at = pair.revoke(static_id)
        assert done.returncode == 0, done.stderr
        assert gateway_token_id(delegate) in done.stdout  # listed as exchanged from it
        _wait_ended(sleepers, revoked_at)
        gone = _wait_backends_gone(pg, sleepers, revoked_at)
        _report("revoke static token", sleepers, gone, pair.last_revoked_at())
        for s in sleepers:
            assert s.ended_after is not None, f"{s.label}: psql still running"
            assert f"token {static_id} was revoked" in s.stderr
    finally:
        for s in sleepers:
            s.stop(pg)
    _refused_login(a, DAVE.value)
    _refused_login(b, delegate)


def test_a_session_ends_when_its_token_expires(pair: Pair, pg: PgServer) -> None:
    a = pair.a
    short = a.exchanged(BOB, "--actor", "brief", "--ttl", "2")
    expires = jwt_claims(short)["exp"]
    sleeper = Sleeper(a, short, "expiring-on-a")
    try:
        pg.wait_until_active(sleeper.marker)
        _wait_ended([sleeper], time.monotonic())
        assert sleeper.exited_at is not None, "the session outlived its token"
        late = time.time() - (time.monotonic() - sleeper.exited_at) - expires
        print(f"expiry: psql exited {late:.3f}s after the token's exp")
        assert "FATAL:  hoopd: " in sleeper.stderr and "expired" in sleeper.stderr
        gone = _wait_backends_gone(pg, [sleeper], time.monotonic())
        print(f"expiry: pg_sleep seen gone on the target {gone[0]:.3f}s after psql exited")
    finally:
        sleeper.stop(pg)
    # Within the verifier's 30 s clock-skew leeway the expired token still passes the
    # login, and the session it opens is ended at once; either way nothing runs.
    error = a.login_error(short)
    assert error is not None
    assert error["code"] == "28P01" or "token of this session expired" in error["message"], error
    print(f"expiry: a login {time.time() - expires:.1f}s after exp is answered {error}")
