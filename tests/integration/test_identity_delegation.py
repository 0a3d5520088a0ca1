"""Delegation end to end: a static root token is exchanged for narrower gateway tokens
(with `hoopd token exchange` and with curl against `/v1/token`), and real psql uses
them against PostgreSQL 15.

What a user sees: the child reads and is refused writes (nothing reaches the target);
it can delegate once more and no further than the configured depth; it cannot widen
its scope (the refusal is an audited token event); sessions and replays name the
whole chain; a policy rule on the chain applies to the deep delegate only; the JWKS
verifies the child; blast-radius shows its read-only reach.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jose import JWTError, jwt

from hoopd.tokens.store import TokenStore
from tests.support.gateway import (
    ACCESS_TOKEN_TYPE,
    Gateway,
    Token,
    gateway_token_id,
    jwt_claims,
    parse_json_records,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.pgserver import PgServer
from tests.support.ports import free_port

ROOT = Token("alice", ("dev",), scope=("appdb:write",))
MAX_DEPTH = 2
POLICY = """\
defaults:
  - unmatched: allow

rules:
  - name: deep-delegates-keep-off-customers
    match:
      identity: {depth: ">= 2"}
      tables: [customers]
    action: deny
    message: a token delegated twice may not touch customers
"""
POLICY_MESSAGE = "a token delegated twice may not touch customers"


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policy_dir = tmp_path_factory.mktemp("chain-policy")
    (policy_dir / "rules.yaml").write_text(POLICY)
    with running_gateway(
        pg,
        tmp_path_factory.mktemp("gw-delegation"),
        tokens=[ROOT],
        policy_dir=policy_dir,
        admin_port=free_port(),
        max_chain_depth=MAX_DEPTH,
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def ci_token(gw: Gateway) -> str:
    """alice > ci-job, read only: minted by `hoopd token exchange --config`."""
    return gw.exchanged(ROOT, "--scope", "appdb:read", "--actor", "ci-job")


@pytest.fixture(scope="module")
def sub_token(gw: Gateway, ci_token: str) -> str:
    """alice > ci-job > sub-agent (depth 2), exchanged by the ci-job token."""
    return gw.exchanged(ci_token, "--actor", "sub-agent")


def _token_events(gw: Gateway) -> list[Any]:
    with TokenStore.open(gw.data_dir) as store:
        return store.events()


def test_the_cli_exchange_gives_a_read_only_delegate(gw: Gateway, ci_token: str) -> None:
    claims = jwt_claims(ci_token)
    assert claims["sub"] == "alice"
    assert claims["scope"] == "appdb:read"
    assert claims["act"] == {"sub": "ci-job"}
    assert claims["iss"] == "hoopd"


def test_the_http_exchange_gives_a_read_only_delegate(gw: Gateway) -> None:
    status, body = gw.exchange_over_http(ROOT.value, scope="appdb:read", actor="ci-job")
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["scope"] == "appdb:read"
    assert 0 < body["expires_in"] <= 900
    claims = jwt_claims(body["access_token"])
    assert (claims["sub"], claims["act"]) == ("alice", {"sub": "ci-job"})
    # The new token works like the CLI's: a read through psql.
    done = gw.psql("-At", "-c", "select 'via http'", token=body["access_token"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "via http"


def test_the_delegate_reads_and_is_refused_writes_before_the_target(
    gw: Gateway, pg: PgServer, ci_token: str
) -> None:
    marker = unique_marker("deleg")
    mark = pg.log_mark()
    done = gw.psql(
        "-At",
        "-v",
        "VERBOSITY=verbose",
        token=ci_token,
        input=(
            "select count(*) from customers;\n"
            f"insert into audit_marks (marker) values ('{marker}');\n"
            f"select 'after {marker}';\n"
        ),
    )
    assert done.stdout.splitlines() == ["50", f"after {marker}"], done.stderr
    assert "ERROR:  42501: hoopd: the token's scope allows read on appdb;" in done.stderr
    assert "this statement needs write" in done.stderr
    assert pg.audit_marks(marker) == 0
    logged = pg.statements_logged(since=mark)
    assert any(f"after {marker}" in s for s in logged)
    assert not any("insert into audit_marks" in s and marker in s for s in logged)
    # The root token, which may write, does write.
    root = gw.psql("-c", f"insert into audit_marks (marker) values ('{marker}')", token=ROOT)
    assert root.returncode == 0, root.stderr
    assert pg.audit_marks(marker) == 1


def test_the_delegate_delegates_once_more(gw: Gateway, sub_token: str) -> None:
    claims = jwt_claims(sub_token)
    assert claims["sub"] == "alice"
    assert claims["scope"] == "appdb:read"
    # RFC 8693: the outermost act is the actor calling now.
    assert claims["act"] == {"sub": "sub-agent", "act": {"sub": "ci-job"}}
    done = gw.psql("-At", "-c", "select 'depth two'", token=sub_token)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "depth two"


def test_widening_is_refused_and_audited(gw: Gateway, ci_token: str) -> None:
    before = _token_events(gw)
    cli = gw.exchange(ci_token, "--scope", "appdb:write", "--actor", "widener")
    assert cli.returncode == 1
    assert cli.stdout == ""
    assert "token exchange refused: invalid_scope" in cli.stderr
    status, body = gw.exchange_over_http(ci_token, scope="appdb:write")
    assert status == 400
    assert body["error"] == "invalid_scope"
    assert "access_token" not in body
    new = _token_events(gw)[len(before) :]
    refused = [e for e in new if e.kind == "refused"]
    assert [e.detail["error"] for e in refused] == ["invalid_scope", "invalid_scope"]
    assert {e.token_id for e in refused} == {gateway_token_id(ci_token)}
    assert {e.subject for e in refused} == {"alice"}
    assert refused[0].detail["asked"]["scope"] == "appdb:write"
    assert refused[0].detail["asked"]["actor"] == "widener"
    assert not [e for e in new if e.kind == "minted"]
    assert ci_token not in json.dumps([e.detail for e in new])  # ids, never tokens


def test_a_chain_deeper_than_the_maximum_is_refused(gw: Gateway, sub_token: str) -> None:
    done = gw.exchange(sub_token, "--actor", "third-hop")
    assert done.returncode == 1
    assert "delegation chain too deep" in done.stderr
    assert f"at most {MAX_DEPTH}" in done.stderr
    status, body = gw.exchange_over_http(sub_token, actor="third-hop")
    assert status == 400 and body["error"] == "invalid_request", body
    # Without a new actor the depth stays 2: a narrower copy is still allowed.
    same_depth = gw.exchanged(sub_token, "--ttl", "60")
    assert jwt_claims(same_depth)["act"]["sub"] == "sub-agent"


def test_sessions_and_replay_name_the_chain(gw: Gateway, sub_token: str) -> None:
    marker = unique_marker("chain")
    before = session_ids(gw)
    done = gw.psql("-At", "-c", f"select '{marker}'", token=sub_token)
    assert done.returncode == 0, done.stderr
    session = wait_for_new_session(gw, before)
    identity = session["identity"]
    assert identity["subject"] == "alice"
    assert identity["actor_chain"] == ["ci-job", "sub-agent"]
    assert identity["issuer"] == "hoopd"
    assert identity["token_id"] == gateway_token_id(sub_token)
    records = gw.replay(session_id_of(session))
    assert records[0]["body"]["identity"]["actor_chain"] == ["ci-job", "sub-agent"]
    assert any(r["kind"] == "statement" and marker in str(r["body"]) for r in records)
    text = gw.cli("replay", session_id_of(session), "--data-dir", str(gw.data_dir))
    assert text.returncode == 0, text.stderr
    assert "alice > ci-job > sub-agent" in text.stdout


def test_the_session_tree_shows_who_started_whom(
    gw: Gateway, ci_token: str, sub_token: str
) -> None:
    for token in (ROOT.value, ci_token, sub_token):
        assert gw.psql("-c", "select 1", token=token).returncode == 0
    done = gw.cli("sessions", "--tree", "--data-dir", str(gw.data_dir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    alice = lines.index("alice")
    ci = lines.index("  > ci-job", alice)
    assert lines.index("    > sub-agent", ci) > ci
    as_json = gw.cli("sessions", "--tree", "--json", "--data-dir", str(gw.data_dir))
    (root,) = [r for r in parse_json_records(as_json.stdout) if r["name"] == "alice"]
    (ci_node,) = root["delegates"]
    assert ci_node["chain"] == ["alice", "ci-job"]
    (sub_node,) = ci_node["delegates"]
    assert sub_node["chain"] == ["alice", "ci-job", "sub-agent"]
    assert sub_node["sessions"] and root["sessions"] and ci_node["sessions"]


def test_a_policy_rule_on_the_chain_applies_to_the_deep_delegate_only(
    gw: Gateway, pg: PgServer, ci_token: str, sub_token: str
) -> None:
    marker = unique_marker("chainpol")
    sql = f"select count(*) as {marker} from customers"
    mark = pg.log_mark()
    deep = gw.psql("-At", "-v", "VERBOSITY=verbose", "-c", sql, token=sub_token)
    assert deep.returncode != 0
    assert POLICY_MESSAGE in deep.stderr
    assert deep.stdout == ""
    assert not any(marker in s for s in pg.statements_logged(since=mark))
    # The same statement from one hop up and from the root runs.
    for token in (ci_token, ROOT.value):
        done = gw.psql("-At", "-c", sql, token=token)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "50"
    # And the deep delegate may still read what the rule does not name.
    other = gw.psql("-At", "-c", "select count(*) from audit_marks", token=sub_token)
    assert other.returncode == 0, other.stderr


def test_the_published_keys_verify_the_delegate(gw: Gateway, ci_token: str) -> None:
    status, jwks = gw.curl("/.well-known/jwks.json")
    assert status == 200
    kid = jwt.get_unverified_header(ci_token)["kid"]
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid]
    assert key["kty"] == "EC" and key["crv"] == "P-256"
    assert "d" not in key  # public parts only
    claims = jwt.decode(ci_token, key, algorithms=["ES256"], audience="hoopd", issuer="hoopd")
    assert claims["act"] == {"sub": "ci-job"}
    # A token with a tampered payload does not verify with it.
    head, _, sig = ci_token.split(".")
    forged_claims = jwt_claims(ci_token) | {"scope": "appdb:write"}
    forged_body = jwt.encode(forged_claims, "k", algorithm="HS256").split(".")[1]
    with pytest.raises(JWTError):
        jwt.decode(f"{head}.{forged_body}.{sig}", key, algorithms=["ES256"], audience="hoopd")


def test_blast_radius_shows_read_only_reach(gw: Gateway, ci_token: str) -> None:
    env = {"HOOPD_TOKEN": ci_token}
    done = gw.cli("blast-radius", "--config", str(gw.config_path), extra_env=env)
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    assert "token: alice > ci-job (groups dev), depth 1, issuer hoopd" in done.stdout
    assert "  appdb (postgres): read" in done.stdout
    report = json.loads(
        gw.cli("blast-radius", "--json", "--config", str(gw.config_path), extra_env=env).stdout
    )
    (appdb,) = [c for c in report["reach"]["connections"] if c["name"] == "appdb"]
    assert appdb["granted"] == "read"
    allowed = {k["kind"] for k in appdb["kinds"] if k["verdict"] == "allow"}
    assert "select" in allowed
    assert not {"insert", "update", "delete", "drop"} & {k["kind"] for k in appdb["kinds"]}


def test_the_exchange_takes_moments(gw: Gateway) -> None:
    """Not a limit: how long an exchange takes through each path, for the report."""
    started = time.monotonic()
    gw.exchanged(ROOT, "--scope", "appdb:read", "--actor", "timing")
    cli = time.monotonic() - started
    started = time.monotonic()
    status, _ = gw.exchange_over_http(ROOT.value, scope="appdb:read", actor="timing")
    http = time.monotonic() - started
    assert status == 200
    print(f"exchange: hoopd token exchange {cli:.3f}s, curl /v1/token {http:.3f}s")


def test_tokens_survive_a_key_rotation(gw: Gateway, ci_token: str) -> None:
    """Last in this module: it changes the signing key."""
    old_kid = jwt.get_unverified_header(ci_token)["kid"]
    done = gw.cli("keys", "rotate", "--config", str(gw.config_path))
    assert done.returncode == 0, done.stderr
    fresh = gw.exchanged(ROOT, "--scope", "appdb:read", "--actor", "after-rotation")
    new_kid = jwt.get_unverified_header(fresh)["kid"]
    assert new_kid != old_kid
    # The running gateway accepts tokens signed with either key, and publishes both.
    for token in (ci_token, fresh):
        done = gw.psql("-At", "-c", "select 'still valid'", token=token)
        assert done.stdout.strip() == "still valid", done.stderr
    status, body = gw.exchange_over_http(ROOT.value, scope="appdb:read")
    assert status == 200 and jwt.get_unverified_header(body["access_token"])["kid"] == new_kid
    status, jwks = gw.curl("/.well-known/jwks.json")
    assert status == 200
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
