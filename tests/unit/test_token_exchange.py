"""RFC 8693 token exchange: a child token can only narrow its parent, never outlive
it, never exceed the delegation depth, and names every hop; every mint and refusal
is recorded."""

from __future__ import annotations

import argparse
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
from jose import jwt

from hoopd.approvals.api import ApiRequest
from hoopd.config import TokenConfig, load_config, token_store_dir
from hoopd.config_identity import IdentityConfig
from hoopd.identity.authenticator import Authenticator
from hoopd.identity.base import Identity
from hoopd.identity.tokens import StaticTokenVerifier, token_sha256
from hoopd.tokens.api import token_endpoint
from hoopd.tokens.claims import MAX_LINEAGE
from hoopd.tokens.cli import add_token_actions, register
from hoopd.tokens.exchange import ExchangeRefusal, ExchangeRequest, MintPlan, exchange
from hoopd.tokens.keys import KeyRing
from hoopd.tokens.service import ACCESS_TOKEN_TYPE, GRANT_TYPE, JWT_TOKEN_TYPE, TokenService
from hoopd.tokens.store import TokenStore
from hoopd.tokens.verifier import GatewayTokenVerifier

NOW = 1_800_000_000.0
CONFIG = IdentityConfig(
    issuer="hoopd", default_ttl_seconds=600, max_ttl_seconds=3600, max_chain_depth=2
)
ALICE = "hoopd_alice-token-0123456789abcdefghijk"
ROBOT = "hoopd_robot-token-0123456789abcdefghijk"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore.open(tmp_path, clock=clock)


@pytest.fixture
def gateway(tmp_path: Path, store: TokenStore, clock: Clock) -> GatewayTokenVerifier:
    keys = KeyRing(tmp_path, max_ttl_seconds=CONFIG.max_ttl_seconds, clock=clock)
    return GatewayTokenVerifier(keys, CONFIG, store, clock=clock)


@pytest.fixture
def service(
    tmp_path: Path, store: TokenStore, gateway: GatewayTokenVerifier, clock: Clock
) -> TokenService:
    static = StaticTokenVerifier(
        [
            TokenConfig(
                "alice", ("dba",), token_sha256(ALICE), NOW + 7200, ("db:write", "pg-*:read")
            ),
            TokenConfig("robot", (), token_sha256(ROBOT), NOW + 7200, ("db:read",)),
        ],
        clock=clock,
    )
    keys = KeyRing(tmp_path, max_ttl_seconds=CONFIG.max_ttl_seconds, clock=clock)
    return TokenService(
        keys,
        CONFIG,
        store,
        Authenticator(static, gateway_issuer=CONFIG.issuer, gateway_tokens=gateway),
        clock=clock,
    )


def form(subject_token: str, **params: str) -> dict[str, str]:
    return {
        "grant_type": GRANT_TYPE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        **params,
    }


async def mint(service: TokenService, subject_token: str, **params: str) -> dict[str, Any]:
    status, body = await service.exchange(form(subject_token, **params))
    assert status == 200, body
    return body


async def refused(service: TokenService, subject_token: str, **params: str) -> dict[str, Any]:
    status, body = await service.exchange(form(subject_token, **params))
    assert status == 400, body
    assert set(body) == {"error", "error_description"}
    return body


def parent(**changes: Any) -> Identity:
    fields: dict[str, Any] = {
        "subject": "alice",
        "groups": ("dba",),
        "token_id": "st:0123456789ab",
        "scope": ("db:write", "pg-*:read"),
        "expires_at": NOW + 7200,
    }
    return Identity(**(fields | changes))


# -- the rules, without tokens --------------------------------------------------------


def test_a_narrower_child_keeps_subject_and_groups_and_extends_chain_and_lineage() -> None:
    plan = exchange(parent(), ExchangeRequest("db:read pg-eu:read", 300, "bot"), CONFIG, NOW)
    assert plan == MintPlan(
        parent_token_id="st:0123456789ab",
        subject="alice",
        groups=("dba",),
        scope=("db:read", "pg-eu:read"),
        actor_chain=("bot",),
        lineage=("st:0123456789ab",),
        issued_at=NOW,
        expires_at=NOW + 300,
    )


def test_defaults_are_the_parents_scope_and_the_default_ttl_capped_at_the_maximum() -> None:
    plan = exchange(parent(), ExchangeRequest(), CONFIG, NOW)
    assert isinstance(plan, MintPlan)
    assert (plan.scope, plan.expires_at, plan.actor_chain) == (
        ("db:write", "pg-*:read"),
        NOW + 600,
        (),
    )
    capped = exchange(parent(), ExchangeRequest(ttl_seconds=10**6), CONFIG, NOW)
    assert isinstance(capped, MintPlan) and capped.expires_at == NOW + 3600


def test_a_child_never_outlives_its_parent() -> None:
    plan = exchange(parent(expires_at=NOW + 60), ExchangeRequest(ttl_seconds=3600), CONFIG, NOW)
    assert isinstance(plan, MintPlan) and plan.expires_at == NOW + 60
    gone = exchange(parent(expires_at=NOW), ExchangeRequest(), CONFIG, NOW)
    assert gone == ExchangeRefusal("invalid_request", "the subject token has expired")


@pytest.mark.parametrize(
    ("scope", "named"),
    [("db:admin", "db:admin"), ("db:read other:read", "other:read"), ("*:read", "*:read")],
)
def test_widening_is_refused_naming_what_would_widen(scope: str, named: str) -> None:
    refusal = exchange(parent(), ExchangeRequest(scope), CONFIG, NOW)
    assert isinstance(refusal, ExchangeRefusal) and refusal.error == "invalid_scope"
    assert refusal.description.endswith(f"not covered by it: {named}")


@pytest.mark.parametrize(
    ("request_", "error", "says"),
    [
        (ExchangeRequest("db:drop"), "invalid_scope", "CONNECTION:ACTION"),
        (ExchangeRequest(" , "), "invalid_scope", "at least one item"),
        (ExchangeRequest(ttl_seconds=0), "invalid_request", "ttl"),
        (ExchangeRequest(actor="has space"), "invalid_request", "actor must be"),
        (ExchangeRequest(actor="x" * 129), "invalid_request", "actor must be"),
    ],
)
def test_malformed_requests_are_refused(request_: ExchangeRequest, error: str, says: str) -> None:
    refusal = exchange(parent(), request_, CONFIG, NOW)
    assert isinstance(refusal, ExchangeRefusal)
    assert refusal.error == error and says in refusal.description


def test_an_unrestricted_parent_must_name_the_childs_scope() -> None:
    refusal = exchange(parent(scope=None), ExchangeRequest(), CONFIG, NOW)
    assert isinstance(refusal, ExchangeRefusal) and refusal.error == "invalid_scope"
    plan = exchange(parent(scope=None), ExchangeRequest("*:admin"), CONFIG, NOW)
    assert isinstance(plan, MintPlan) and plan.scope == ("*:admin",)


def test_the_delegation_depth_is_bounded() -> None:
    two_deep = parent(actor_chain=("a", "b"), lineage=("st:x",), token_id="gt:y")
    refusal = exchange(two_deep, ExchangeRequest(actor="c"), CONFIG, NOW)
    assert isinstance(refusal, ExchangeRefusal) and refusal.error == "invalid_request"
    assert refusal.description.startswith("delegation chain too deep")
    # Narrowing without a new actor adds no depth.
    assert isinstance(exchange(two_deep, ExchangeRequest("db:read"), CONFIG, NOW), MintPlan)


# -- the service: tokens in, tokens out ------------------------------------------------


async def test_exchanged_tokens_narrow_and_verify(
    service: TokenService, gateway: GatewayTokenVerifier
) -> None:
    body = await mint(service, ALICE, scope="db:read", ttl="120", actor="planner")
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert (body["expires_in"], body["scope"]) == (120, "db:read")
    child = await gateway.verify(body["access_token"])
    assert child is not None
    assert (child.subject, child.groups, child.scope, child.actor_chain, child.lineage) == (
        "alice",
        ("dba",),
        ("db:read",),
        ("planner",),
        ("st:" + token_sha256(ALICE)[:12],),
    )
    assert child.expires_at == NOW + 120


async def test_act_nesting_names_every_hop(
    service: TokenService, gateway: GatewayTokenVerifier
) -> None:
    first = await mint(service, ALICE, actor="planner")
    second = await mint(service, first["access_token"], actor="sql-agent", scope="db:read")
    claims = jwt.get_unverified_claims(second["access_token"])
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": "sql-agent", "act": {"sub": "planner"}}
    first_id = "gt:" + jwt.get_unverified_claims(first["access_token"])["jti"]
    assert claims["hoopd_lineage"] == ["st:" + token_sha256(ALICE)[:12], first_id]
    child = await gateway.verify(second["access_token"])
    assert child is not None and child.actor_chain == ("planner", "sql-agent")
    await refused(service, second["access_token"], actor="third")  # depth 2 is the most


async def test_expiry_is_capped_at_the_parent(service: TokenService, clock: Clock) -> None:
    first = await mint(service, ALICE, ttl="300")
    clock.now += 200
    second = await mint(service, first["access_token"], ttl="3600")
    assert second["expires_in"] == 100
    claims = jwt.get_unverified_claims(second["access_token"])
    assert claims["exp"] == NOW + 300


async def test_widening_is_refused_and_recorded(service: TokenService, store: TokenStore) -> None:
    body = await refused(service, ALICE, scope="db:admin", actor="bot")
    assert body["error"] == "invalid_scope"
    assert "db:admin" in body["error_description"]
    (event,) = store.events()
    assert (event.kind, event.token_id, event.subject) == (
        "refused",
        "st:" + token_sha256(ALICE)[:12],
        "alice",
    )
    assert event.detail["error"] == "invalid_scope"
    assert event.detail["asked"]["scope"] == "db:admin"
    assert event.detail["asked"]["actor"] == "bot"


async def test_mints_are_recorded_without_the_token(
    service: TokenService, store: TokenStore, tmp_path: Path
) -> None:
    body = await mint(service, ALICE, scope="db:read", actor="bot")
    (event,) = store.events()
    child_id = "gt:" + jwt.get_unverified_claims(body["access_token"])["jti"]
    assert (event.kind, event.token_id, event.actor) == ("minted", child_id, "bot")
    assert event.detail["parent"] == "st:" + token_sha256(ALICE)[:12]
    assert store.subtree("st:" + token_sha256(ALICE)[:12]) == [child_id]
    database = b"".join(p.read_bytes() for p in tmp_path.glob("tokens.db*"))
    for secret in (ALICE, body["access_token"]):
        assert secret.encode() not in database
    assert ALICE not in json.dumps(event.detail)


async def test_a_revoked_parent_cannot_exchange(service: TokenService, clock: Clock) -> None:
    first = await mint(service, ALICE, actor="planner")
    first_id = "gt:" + jwt.get_unverified_claims(first["access_token"])["jti"]
    service.revoke_token(first_id, "ops", "")
    body = await refused(service, first["access_token"], scope="db:read")
    assert body["error"] == "invalid_request"

    # A static parent is checked against the store too.
    service.revoke_token("st:" + token_sha256(ALICE)[:12], "ops", "")
    assert (await refused(service, ALICE))["error"] == "invalid_request"


async def test_the_actor_token_names_the_actor(
    service: TokenService, gateway: GatewayTokenVerifier, store: TokenStore
) -> None:
    body = await mint(
        service, ALICE, scope="db:read", actor_token=ROBOT, actor_token_type=JWT_TOKEN_TYPE
    )
    child = await gateway.verify(body["access_token"])
    assert child is not None and (child.subject, child.actor_chain) == ("alice", ("robot",))

    same = await mint(
        service, ALICE, actor="robot", actor_token=ROBOT, actor_token_type=JWT_TOKEN_TYPE
    )
    assert same["scope"] == "db:write pg-*:read"
    for params in (
        {"actor_token": "hoopd_not-a-token", "actor_token_type": ACCESS_TOKEN_TYPE},
        {"actor_token": ROBOT},  # actor_token_type is required with it
        {"actor_token": ROBOT, "actor_token_type": ACCESS_TOKEN_TYPE, "actor": "someone"},
    ):
        assert (await refused(service, ALICE, **params))["error"] == "invalid_request"
    refusals = [e for e in store.events() if e.kind == "refused"]
    # Each refusal names the subject token that asked, though the actor token failed.
    assert [e.token_id for e in refusals] == ["st:" + token_sha256(ALICE)[:12]] * 3


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
        ({"subject_token": "hoopd_not-a-token"}, "invalid_request"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"requested_token_type": "urn:x"}, "invalid_request"),
        ({"audience": "https://elsewhere"}, "invalid_target"),
        ({"ttl": "ten"}, "invalid_request"),
        ({"ttl": "-5"}, "invalid_request"),
    ],
)
async def test_bad_requests_get_the_rfc_error_code(
    service: TokenService, params: dict[str, str], error: str
) -> None:
    status, body = await service.exchange(form(ALICE) | params)
    assert (status, body["error"]) == (400, error)


async def test_a_missing_subject_token_is_refused(service: TokenService) -> None:
    status, body = await service.exchange({"grant_type": GRANT_TYPE})
    assert (status, body["error"]) == (400, "invalid_request")
    assert "subject_token" in body["error_description"]


def test_the_number_of_exchanges_from_a_root_is_bounded() -> None:
    long_line = parent(token_id="gt:last", lineage=tuple(f"gt:{i}" for i in range(MAX_LINEAGE)))
    refusal = exchange(long_line, ExchangeRequest("db:read"), CONFIG, NOW)
    assert isinstance(refusal, ExchangeRefusal)
    assert refusal.description.startswith("delegation chain too deep")
    shorter = parent(token_id="gt:last", lineage=tuple(f"gt:{i}" for i in range(MAX_LINEAGE - 1)))
    assert isinstance(exchange(shorter, ExchangeRequest("db:read"), CONFIG, NOW), MintPlan)


# -- hoopd token exchange ---------------------------------------------------------------


def write_config(directory: Path) -> Path:
    path = directory / "hoopd.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "data"

[[tokens]]
identity = "alice"
groups = ["dba"]
sha256 = "{token_sha256(ALICE)}"
expires = 2099-01-01T00:00:00Z
scope = ["db:write"]

[[connections]]
name = "db"
protocol = "postgres"
listen = "127.0.0.1:6432"
[connections.target]
host = "127.0.0.1"
port = 5432
database = "app"
user = "app"
secret = {{ env = "UNUSED_SECRET" }}
"""
    )
    return path


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hoopd")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token")
    add_token_actions(token.add_subparsers(dest="token_command", required=True))
    register(commands)
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_exchange_prints_only_the_new_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    monkeypatch.setenv("HOOPD_TOKEN", ALICE)
    argv = ["token", "exchange", "--scope", "db:read", "--ttl", "60", "--actor", "bot"]
    assert run_cli([*argv, "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and err == ""
    claims = jwt.get_unverified_claims(token)
    assert (claims["scope"], claims["act"], claims["exp"] - claims["nbf"]) == (
        "db:read",
        {"sub": "bot"},
        60,
    )

    monkeypatch.setenv("HOOPD_TOKEN", token)
    assert run_cli(["token", "exchange", "--scope", "db:write", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "invalid_scope" in err and "db:write" in err and token not in err


def test_exchange_json_names_the_new_token_so_it_can_be_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    monkeypatch.setenv("HOOPD_TOKEN", ALICE)
    argv = ["token", "exchange", "--scope", "db:read", "--json", "--config", str(config)]
    assert run_cli(argv) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["token_id"] == "gt:" + jwt.get_unverified_claims(answer["access_token"])["jti"]
    assert answer["scope"] == "db:read"
    assert run_cli(["revoke", answer["token_id"], "--config", str(config)]) == 0


def test_exchange_through_a_gateways_admin_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(write_config(tmp_path))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = ApiRequest("POST", self.path, list(self.headers.items()), body)
            with TokenStore.open(token_store_dir(config)) as store:
                keys = KeyRing(config.data_dir, max_ttl_seconds=3600)
                verifier = StaticTokenVerifier(config.tokens)
                service = TokenService(keys, config.identity, store, verifier)
                response = trio.run(token_endpoint, service, request)
            self.send_response(response.status)
            self.end_headers()
            self.wfile.write(response.encoded())

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("HOOPD_TOKEN", ALICE)
        assert run_cli(["token", "exchange", "--scope", "db:read", "--admin", url]) == 0
        out, _ = capsys.readouterr()
        assert jwt.get_unverified_claims(out.strip())["scope"] == "db:read"

        assert run_cli(["token", "exchange", "--scope", "db:admin", "--admin", url]) == 1
        out, err = capsys.readouterr()
        assert out == "" and "invalid_scope" in err
    finally:
        server.shutdown()
        server.server_close()


def test_exchange_without_a_token_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOOPD_TOKEN", "")
    assert run_cli(["token", "exchange", "--config", str(write_config(tmp_path))]) == 1
    assert "no token" in capsys.readouterr().err
