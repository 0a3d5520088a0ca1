"""The whole chain a CI job starts, end to end: a CI identity logs in at a real OIDC
provider (client credentials), exchanges its access token at the gateway for a child
token for its job, the job mints a grandchild for a sub-agent; psql works through the
gateway with each; revoking the root (the CI identity's OIDC token) ends the
grandchild's live psql session, refuses its next login, and stops what the target ran
for it; the recording names the chain; no token or key ever reaches a log or a
recording.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoopd.tokens.store import TokenStore
from tests.support.gateway import (
    Gateway,
    jwt_claims,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.oidc import (
    AUDIENCE,
    OidcProvider,
)
from tests.support.pgserver import PgServer
from tests.support.ports import free_port

ISSUER_NAME = "ci-idp"


@pytest.fixture(scope="module")
def gw(
    pg: PgServer, provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    issuer = {
        "name": ISSUER_NAME,
        "issuer": provider.issuer,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "scope": ["appdb:write"],
        "accept_on": ["appdb"],
    }
    with running_gateway(
        pg,
        tmp_path_factory.mktemp("gw-ci-chain"),
        admin_port=free_port(),
        oidc_issuers=[issuer],
        auth_failure_delay_seconds=0.1,
    ) as gateway:
        yield gateway


def _psql(gw: Gateway, token: str, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-X", "-At", "-d", gw.conninfo(), "-c", sql],
        env=gw.client_env(token),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_revoking_the_ci_root_ends_its_grandchilds_live_session(
    gw: Gateway, pg: PgServer, provider: OidcProvider
) -> None:
    root = provider.machine_token()["access_token"]
    # The CI identity exchanges its IdP token at the gateway's token endpoint...
    status, body = gw.curl(
        "--data-urlencode", "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        "--data-urlencode", f"subject_token={root}",
        "--data-urlencode", "subject_token_type=urn:ietf:params:oauth:token-type:access_token",
        "--data-urlencode", "scope=appdb:write", "--data-urlencode", "actor=ci-job",
        "--data-urlencode", "ttl=600", "/v1/token",
    )  # fmt: skip
    assert status == 200, body
    child = body["access_token"]
    # ... and its job mints a narrower one for the sub-agent it starts.
    exchange = ("--ttl", "600")
    grandchild = gw.exchanged(child, *exchange, "--scope", "appdb:read", "--actor", "sub-agent")
    assert jwt_claims(grandchild)["act"] == {"sub": "sub-agent", "act": {"sub": "ci-job"}}

    # psql through the gateway with each token of the chain.
    for token in (root, child, grandchild):
        done = _psql(gw, token, "select current_user")
        assert done.returncode == 0, done.stderr
    widened = gw.exchange(grandchild, *exchange, "--scope", "appdb:write")
    assert widened.returncode == 1 and "invalid_scope" in widened.stderr

    marker = unique_marker("grandchild")
    before = session_ids(gw)
    live = subprocess.Popen(
        ["psql", "-X", "-At", "-d", gw.conninfo(), "-c", f"select pg_sleep(60) -- {marker}"],
        env=gw.client_env(grandchild),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exited: list[tuple[float, str]] = []

    def wait_for_exit() -> None:
        _, err = live.communicate(timeout=60)
        exited.append((time.time(), err))

    watcher = threading.Thread(target=wait_for_exit, daemon=True)
    try:
        _wait_for_target(pg, marker, running=True)
        session = wait_for_new_session(gw, before)
        watcher.start()
        root_id = f"oidc:{ISSUER_NAME}:{jwt_claims(root)['jti']}"
        revoked = gw.cli("revoke", root_id, "--config", str(gw.config_path), "--reason", "ci")
        assert revoked.returncode == 0, revoked.stderr
        watcher.join(timeout=30)
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert exited, "the grandchild's session did not end"
    with TokenStore.open(gw.data_dir) as store:
        revoked_at = store.revocations_since(0)[-1].revoked_at
    when, err = exited[0]
    print(f"the grandchild's psql exited {1000 * (when - revoked_at):.0f} ms after the revocation")
    assert live.returncode != 0
    assert f"token {root_id} was revoked" in err
    _wait_for_target(pg, marker, running=False)  # what it ran on the target is gone
    again = _psql(gw, grandchild, "select 1")
    assert again.returncode != 0 and "password authentication failed" in again.stderr

    records = gw.replay(session_id_of(session))
    start = next(r for r in records if r["kind"] == "session_start")
    assert start["body"]["identity"]["actor_chain"] == ["ci-job", "sub-agent"]
    assert start["body"]["identity"]["issuer"] == "hoopd"
    assert start["body"]["identity"]["lineage"][0] == root_id
    assert any(r["kind"] == "revoked" for r in records)
    text = gw.cli("replay", session_id_of(session), "--data-dir", str(gw.data_dir)).stdout
    assert "ci-job > sub-agent" in text

    _no_secret_anywhere(gw, [root, child, grandchild])


def _wait_for_target(pg: PgServer, marker: str, *, running: bool) -> None:
    deadline = time.monotonic() + 15
    query = f"select count(*) from pg_stat_activity where query like '%{marker}%'"
    while time.monotonic() < deadline:
        # The probe's own query names the marker too: it counts itself once.
        if (int(pg.scalar(query)) > 1) == running:
            return
        time.sleep(0.05)
    raise AssertionError(f"the target {'never ran' if running else 'still runs'} {marker}")


def _no_secret_anywhere(gw: Gateway, secrets: list[str]) -> None:
    """Neither tokens nor the gateway's signing keys appear in the gateway's log, its
    recordings, its index or its stores."""
    keys = [
        json.loads(path.read_text())["private_key"]
        for path in sorted((gw.data_dir / "keys").glob("*.json"))
    ]
    assert keys, "the signing keys are where the docs say"
    key_bodies = ["".join(pem.splitlines()[1:-1]) for pem in keys]
    log = gw.stderr_text()
    files: list[Path] = [
        path for path in gw.data_files() if "keys" not in path.relative_to(gw.data_dir).parts
    ]
    for secret in [*secrets, *key_bodies]:
        needle = secret.encode()
        assert secret not in log
        for path in files:
            assert needle not in path.read_bytes(), f"a secret in {path.name}"
