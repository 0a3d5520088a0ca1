"""Security properties a user or an auditor can check from the outside.

- A bad token is refused (28P01), after the configured delay, is recorded as a
  denied attempt, and never causes a connection to the target.
- The upstream password never leaves the gateway: not to the client, not to its
  log, not into its recordings.
- The client's token never reaches the target.
- The client leg requires TLS (unless plaintext on loopback is allowed).
- Unusual but legitimate client behaviour (GSSENCRequest) works; misconfiguration
  (unreachable target, unknown database name) is reported clearly.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.gateway import (
    Gateway,
    Route,
    Token,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.pgserver import PgServer
from tests.support.pgwire import open_session
from tests.support.ports import DeadPort

AUTH_FAILURE_DELAY = 0.5
UPSTREAM_AUTHORIZED = re.compile(r"LOG:  connection authorized: user=")


@pytest.fixture(scope="module")
def dead_port() -> Iterator[DeadPort]:
    with DeadPort() as port:
        yield port


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wrong-ca") / "ca.crt"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def gw(
    pg: PgServer,
    dead_port: DeadPort,
    wrong_ca: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    routes = [
        Route("appdb"),
        Route("reports", share_listener_with="appdb"),
        Route("deadend", target_port=dead_port.port),
        Route("impostor", tls="verify-full", ca_file=wrong_ca),
    ]
    tokens = [Token("alice", ("dba",)), Token("bob", ("analysts",))]
    with running_gateway(
        pg,
        tmp_path_factory.mktemp("gw-security"),
        routes=routes,
        tokens=tokens,
        auth_failure_delay_seconds=AUTH_FAILURE_DELAY,
        log_level="debug",  # the most talkative log must still hold no secret
    ) as gateway:
        yield gateway


def _no_upstream_connection_since(pg: PgServer, mark: int) -> None:
    assert not UPSTREAM_AUTHORIZED.search(pg.log_text(mark)), pg.log_text(mark)


def test_wrong_token_is_refused_with_28p01(gw: Gateway, pg: PgServer) -> None:
    before = session_ids(gw)
    mark = pg.log_mark()
    started = time.monotonic()
    conn, error = open_session(
        "127.0.0.1", gw.ports["appdb"], dbname="appdb", password="not-a-valid-token"
    )
    elapsed = time.monotonic() - started
    conn.close()
    assert error is not None
    assert error["code"] == "28P01"
    assert error["severity"] == "FATAL"
    assert elapsed >= AUTH_FAILURE_DELAY * 0.9
    # psql reports the failure too (libpq prints no SQLSTATE for connection errors).
    done = gw.psql("-c", "select 1", token="another-wrong-token")
    assert done.returncode == 2
    assert "password authentication failed" in done.stderr
    # Nothing reached the target: the token is checked before any dial.
    _no_upstream_connection_since(pg, mark)
    # Both attempts are recorded as denied.
    deadline = time.monotonic() + 10
    while True:
        fresh = [s for s in gw.sessions() if session_id_of(s) not in before]
        if len(fresh) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(fresh) == 2, fresh
    for session in fresh:
        records = gw.replay(session_id_of(session))
        auths = [r for r in records if r["kind"] == "auth"]
        assert [a["body"].get("outcome") for a in auths] == ["denied"], records
        assert not [r for r in records if r["kind"] == "statement"]


def test_a_good_token_is_accepted_and_identifies_its_holder(gw: Gateway, pg: PgServer) -> None:
    bob = gw.tokens[1]
    before = session_ids(gw)
    done = gw.psql("-At", "-c", "select current_user", token=bob)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "app"
    session = wait_for_new_session(gw, before)
    assert session["identity"]["subject"] == "bob"
    assert session["identity"]["groups"] == ["analysts"]


def test_upstream_password_never_leaves_the_gateway(gw: Gateway, pg: PgServer) -> None:
    secret = pg.app_password
    script = "\n".join(
        [
            "\\conninfo",
            "show password_encryption;",
            "select * from pg_stat_activity where pid = pg_backend_pid();",
            "select name, setting from pg_settings where name like '%pass%';",
            "select current_setting('no.such_setting');",
            "\\set VERBOSITY verbose",
            "select 1/0;",
            "",
        ]
    )
    outputs = []
    for route in ("appdb", "deadend", "impostor"):
        done = gw.psql("-f", "-", input=script, route=route)
        outputs += [done.stdout, done.stderr]
    wrong = gw.psql("-c", "select 1", token="wrong")
    outputs += [wrong.stdout, wrong.stderr]
    assert "SSL connection" in outputs[0]  # \conninfo ran
    assert "scram-sha-256" in outputs[0]  # show password_encryption ran
    forms = [secret, base64.b64encode(secret.encode()).decode(), secret.encode().hex()]
    for text in outputs:
        for form in forms:
            assert form not in text

    # Not in the gateway's log (at debug level), nor in any file it wrote.
    log = gw.stderr_text()
    assert log, "the gateway logged nothing at debug level"
    for form in forms:
        assert form not in log
    files = list(gw.data_files())
    assert any(p.parts[-2] == "journal" or "journal" in p.parts for p in files), files
    for path in files:
        content = path.read_bytes()
        for form in forms:
            assert form.encode() not in content, path
    # Nor in what the recording commands print.
    listed = gw.cli("sessions", "--data-dir", str(gw.data_dir), "--json").stdout
    assert secret not in listed
    for session in gw.sessions():
        replayed = gw.cli("replay", session_id_of(session), "--data-dir", str(gw.data_dir))
        assert secret not in replayed.stdout + replayed.stderr


def test_client_token_never_reaches_the_target(gw: Gateway, pg: PgServer) -> None:
    token = gw.token.value
    mark = pg.log_mark()
    done = gw.psql(
        "-At",
        "-c",
        "select current_user, application_name from pg_stat_activity where pid = pg_backend_pid()",
        conn_extra={"application_name": "token-test"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "app|token-test"
    # The target saw the gateway's own login (user app, SCRAM), not the client's user.
    pg.wait_for_log(
        r'app@app LOG:  connection authenticated: identity="app" method=scram', since=mark
    )
    assert "user=anything" not in pg.log_text(mark)
    assert token.encode() not in pg.log_bytes()
    # And the gateway keeps the token out of its own log and files as well.
    assert token not in gw.stderr_text()
    for path in gw.data_files():
        assert token.encode() not in path.read_bytes(), path


def test_plaintext_client_is_refused(gw: Gateway, pg: PgServer) -> None:
    mark = pg.log_mark()
    done = gw.psql("-c", "select 1", sslmode="disable")
    assert done.returncode == 2
    assert "requires TLS" in done.stderr
    conn, error = open_session(
        "127.0.0.1", gw.ports["appdb"], dbname="appdb", password=gw.token.value, tls=False
    )
    conn.close()
    assert error is not None and error["code"] == "28000"
    _no_upstream_connection_since(pg, mark)


def test_plaintext_on_loopback_when_allowed(pg: PgServer, tmp_path: Path) -> None:
    marker = unique_marker("plain")
    with running_gateway(pg, tmp_path / "gw", allow_plaintext_on_loopback=True) as gateway:
        mark = pg.log_mark()
        done = gateway.psql("-At", "-c", f"select '{marker}'", sslmode="disable")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == marker
        assert f"select '{marker}'" in pg.statements_logged(since=mark)


def test_gssenc_request_is_declined_and_tls_follows(gw: Gateway, pg: PgServer) -> None:
    marker = unique_marker("gss")
    mark = pg.log_mark()
    done = gw.psql("-At", "-c", f"select '{marker}'", conn_extra={"gssencmode": "prefer"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == marker
    # libpq skips GSSENCRequest without Kerberos credentials, so send one by hand.
    conn, error = open_session(
        "127.0.0.1",
        gw.ports["appdb"],
        dbname="appdb",
        password=gw.token.value,
        gssenc_first=True,
    )
    try:
        assert error is None, error
        result = conn.simple_query(f"select '{marker}-raw'")
    finally:
        conn.close()
    assert result.rows == [[f"{marker}-raw"]]
    logged = pg.statements_logged(since=mark)
    assert f"select '{marker}'" in logged and f"select '{marker}-raw'" in logged


def test_unreachable_target_names_the_connection(gw: Gateway) -> None:
    conn, error = open_session(
        "127.0.0.1", gw.ports["deadend"], dbname="deadend", password=gw.token.value
    )
    conn.close()
    assert error is not None
    assert error["code"] == "08001"
    assert '"deadend"' in error["message"]
    done = gw.psql("-c", "select 1", route="deadend")
    assert done.returncode == 2
    assert "deadend" in done.stderr


def test_target_with_an_untrusted_certificate_is_not_used(gw: Gateway, pg: PgServer) -> None:
    """``verify-full`` against a CA that did not sign the target's certificate: the gateway
    must abort the TLS handshake, so the target never sees a login."""
    mark = pg.log_mark()
    done = gw.psql("-c", "select 1", route="impostor")
    assert done.returncode == 2
    assert "impostor" in done.stderr
    _no_upstream_connection_since(pg, mark)


def test_unknown_database_name_lists_the_connections(gw: Gateway, pg: PgServer) -> None:
    mark = pg.log_mark()
    conn, error = open_session(
        "127.0.0.1", gw.ports["appdb"], dbname="nosuchdb", password=gw.token.value
    )
    conn.close()
    assert error is not None
    assert error["code"] == "3D000"
    told = " ".join(error.values())
    assert "appdb" in told and "reports" in told
    # Only the names that share this listener; the others are not this listener's business.
    assert "deadend" not in told
    done = gw.psql("-c", "select 1", dbname="nosuchdb")
    assert done.returncode == 2
    assert "appdb" in done.stderr
    _no_upstream_connection_since(pg, mark)


def test_two_connections_on_one_listener_are_chosen_by_name(gw: Gateway, pg: PgServer) -> None:
    before = session_ids(gw)
    done = gw.psql("-At", "-c", "select current_database()", route="reports")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "app"
    session = wait_for_new_session(gw, before)
    assert session["connection"] == "reports"


def test_channel_binding_require_is_refused_by_the_client(gw: Gateway, pg: PgServer) -> None:
    """The gateway terminates TLS and asks for a cleartext password (the token), so there
    is no SCRAM exchange to bind to the TLS channel. libpq with ``channel_binding=require``
    therefore refuses on its own side, with its own message, before sending the token;
    nothing reaches the target."""
    mark = pg.log_mark()
    done = gw.psql("-c", "select 1", conn_extra={"channel_binding": "require"})
    assert done.returncode == 2
    assert "channel binding required" in done.stderr
    _no_upstream_connection_since(pg, mark)


def test_generated_certificate_verifies_with_verify_full(gw: Gateway, pg: PgServer) -> None:
    """Without a configured certificate the gateway generates one; a client that pins it as
    its root (sslrootcert) and checks the host name (verify-full) connects."""
    generated = gw.data_dir / "tls" / "server.crt"
    assert generated.is_file()
    marker = unique_marker("pinned")
    mark = pg.log_mark()
    done = gw.psql(
        "-At",
        "-c",
        f"select current_user, '{marker}'",
        sslmode="verify-full",
        conn_extra={"sslrootcert": str(generated)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"app|{marker}"
    assert f"select current_user, '{marker}'" in pg.statements_logged(since=mark)
    # The key next to it is private to the gateway.
    assert (gw.data_dir / "tls" / "server.key").stat().st_mode & 0o077 == 0


def test_configured_client_certificate_is_presented(pg: PgServer, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, root = tmp_path / "gw.crt", tmp_path / "gw.key", tmp_path / "ca.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(root))
    marker = unique_marker("own_cert")
    with running_gateway(
        pg, tmp_path / "gw", client_cert_file=cert, client_key_file=key
    ) as gateway:
        mark = pg.log_mark()
        done = gateway.psql(
            "-At",
            "-c",
            f"select '{marker}'",
            sslmode="verify-full",
            conn_extra={"sslrootcert": str(root)},
        )
        assert done.returncode == 0, done.stderr
        assert f"select '{marker}'" in pg.statements_logged(since=mark)
        # A client that trusts some other CA refuses the gateway.
        refused = gateway.psql(
            "-c",
            "select 1",
            sslmode="verify-full",
            conn_extra={"sslrootcert": str(_other_ca_root(tmp_path))},
        )
        assert refused.returncode == 2
        assert "certificate verify failed" in refused.stderr
        assert not (gateway.data_dir / "tls" / "server.crt").exists()


def _other_ca_root(tmp_path: Path) -> Path:
    path = tmp_path / "other-ca.crt"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path
