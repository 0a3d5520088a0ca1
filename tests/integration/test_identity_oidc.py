"""OIDC end to end: access tokens from a real OpenID Connect provider (npm
oidc-provider on 127.0.0.1, client credentials) through the gateway to PostgreSQL 15.

What a user sees: a machine's access token works as psql's password on the
connection its issuer is accepted on (with the scope the issuer's configuration and
the token's groups give it), and nowhere else; exchanged at `/v1/token` it yields a
gateway token within that scope, which psql can use anywhere the scope reaches; a
wider request is refused; recordings name the issuer and the subject; a token meant
for another audience cannot log in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.gateway import (
    Gateway,
    Route,
    Token,
    gateway_token_id,
    jwt_claims,
    running_gateway,
    session_id_of,
    session_ids,
    unique_marker,
    wait_for_new_session,
)
from tests.support.oidc import (
    AUDIENCE,
    MACHINE_CLIENT_ID,
    MACHINE_GROUPS,
    OTHER_AUDIENCE,
    OidcProvider,
)
from tests.support.pgserver import PgServer
from tests.support.ports import free_port

ISSUER_NAME = "test-idp"
ISSUER_SCOPE = ("appdb:read",)
GROUP_SCOPES = {"robots": ("appdb:write", "reports:read")}


@pytest.fixture(scope="module")
def gw(
    pg: PgServer, provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    issuer = {
        "name": ISSUER_NAME,
        "issuer": provider.issuer,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "scope": list(ISSUER_SCOPE),
        "group_scopes": {group: list(items) for group, items in GROUP_SCOPES.items()},
        "accept_on": ["appdb"],
    }
    with running_gateway(
        pg,
        tmp_path_factory.mktemp("gw-oidc"),
        routes=[Route("appdb"), Route("reports")],
        tokens=[Token("admin", ("hoopd-admins",), scope=("appdb:read",))],
        admin_port=free_port(),
        oidc_issuers=[issuer],
        auth_failure_delay_seconds=0.1,
    ) as gateway:
        yield gateway


@pytest.fixture
def machine_token(provider: OidcProvider) -> str:
    """A fresh client-credentials access token for the machine client (groups robots)."""
    token: str = provider.machine_token()["access_token"]
    return token


def test_the_access_token_is_a_password_on_the_accepted_connection(
    gw: Gateway, pg: PgServer, machine_token: str
) -> None:
    claims = jwt_claims(machine_token)
    assert claims["aud"] == AUDIENCE and claims["groups"] == list(MACHINE_GROUPS)
    marker = unique_marker("oidc")
    before = session_ids(gw)
    done = gw.psql(
        "-At", "-v", "ON_ERROR_STOP=1",
        token=machine_token,
        input=f"insert into audit_marks (marker) values ('{marker}');\nselect 'oidc ok';\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "oidc ok"
    assert pg.audit_marks(marker) == 1  # robots may write: group_scopes applied
    session = wait_for_new_session(gw, before)
    identity = session["identity"]
    assert identity["issuer"] == ISSUER_NAME
    assert identity["subject"] == MACHINE_CLIENT_ID
    assert identity["groups"] == list(MACHINE_GROUPS)
    assert identity["token_id"] == f"oidc:{ISSUER_NAME}:{claims['jti']}"
    assert identity["scope"] == ["appdb:read", "appdb:write", "reports:read"]
    assert machine_token not in str(gw.replay(session_id_of(session)))
    # Beyond write, the token's scope does not reach.
    refused = gw.psql("-c", "create table oidc_probe (id int)", token=machine_token)
    assert "this statement needs admin" in refused.stderr
    assert pg.scalar("select to_regclass('oidc_probe') is null") == "t"


def test_the_access_token_is_refused_where_the_issuer_is_not_accepted(
    gw: Gateway, machine_token: str
) -> None:
    # Its scope names reports:read, but the issuer is accepted on appdb only.
    error = gw.login_error(machine_token, "reports")
    assert error is not None and error["code"] == "28P01", error
    done = gw.psql("-c", "select 1", route="reports", token=machine_token)
    assert done.returncode != 0
    assert "password authentication failed" in done.stderr


def test_a_token_for_another_audience_cannot_log_in(gw: Gateway, provider: OidcProvider) -> None:
    other = provider.machine_token(resource=OTHER_AUDIENCE)["access_token"]
    assert jwt_claims(other)["aud"] == OTHER_AUDIENCE  # valid, just not meant for hoopd
    error = gw.login_error(other)
    assert error is not None and error["code"] == "28P01", error
    done = gw.psql("-c", "select 1", token=other)
    assert done.returncode != 0
    assert "password authentication failed" in done.stderr
    # Nor can it be exchanged for a gateway token.
    status, body = gw.exchange_over_http(other, scope="appdb:read")
    assert status == 400 and body["error"] == "invalid_request", body


def test_the_exchange_stays_within_the_issuers_scope(
    gw: Gateway, pg: PgServer, machine_token: str
) -> None:
    started = time.monotonic()
    status, body = gw.exchange_over_http(machine_token, scope="reports:read", actor="etl")
    print(f"OIDC token exchange through /v1/token: {time.monotonic() - started:.3f}s")
    assert status == 200, body
    assert body["scope"] == "reports:read"
    child = body["access_token"]
    claims = jwt_claims(child)
    assert claims["iss"] == "hoopd" and claims["sub"] == MACHINE_CLIENT_ID
    assert claims["act"] == {"sub": "etl"}
    oidc_id = f"oidc:{ISSUER_NAME}:{jwt_claims(machine_token)['jti']}"
    assert claims["hoopd_lineage"] == [oidc_id]

    # A gateway token is accepted on every connection its scope names.
    before = session_ids(gw)
    done = gw.psql("-At", "-c", "select 'reports via hoopd'", route="reports", token=child)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reports via hoopd"
    identity = wait_for_new_session(gw, before)["identity"]
    assert (identity["issuer"], identity["subject"]) == ("hoopd", MACHINE_CLIENT_ID)
    assert identity["actor_chain"] == ["etl"]
    assert identity["lineage"] == [oidc_id]
    # ... and on no other.
    assert gw.login_error(child, "appdb") is not None

    # Wider than the issuer gives: refused, and nothing is minted.
    for wider in ("reports:write", "appdb:admin", "*:read"):
        status, body = gw.exchange_over_http(machine_token, scope=wider)
        assert status == 400, (wider, body)
        assert body["error"] == "invalid_scope", (wider, body)
        assert "access_token" not in body


def test_the_cli_exchanges_an_access_token_through_the_admin_api(
    gw: Gateway, machine_token: str
) -> None:
    done = gw.cli(
        "token", "exchange", "--admin", gw.admin_url, "--scope", "appdb:read", "--actor", "cron",
        extra_env={"HOOPD_TOKEN": machine_token},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    child = done.stdout.strip()
    assert jwt_claims(child)["scope"] == "appdb:read"
    ran = gw.psql("-At", "-c", "select 'cli child'", token=child)
    assert ran.stdout.strip() == "cli child", ran.stderr


def test_revoking_an_access_token_revokes_what_was_exchanged_from_it(
    gw: Gateway, machine_token: str
) -> None:
    status, body = gw.exchange_over_http(machine_token, scope="appdb:read", actor="short-lived")
    assert status == 200, body
    child = body["access_token"]
    assert gw.login_error(child) is None and gw.login_error(machine_token) is None
    oidc_id = f"oidc:{ISSUER_NAME}:{jwt_claims(machine_token)['jti']}"
    done = gw.cli("revoke", oidc_id, "--config", str(gw.config_path))
    assert done.returncode == 0, done.stderr
    assert gateway_token_id(child) in done.stdout  # listed as exchanged from it
    for token in (machine_token, child):
        error = gw.login_error(token)
        assert error is not None and error["code"] == "28P01", error
    status, body = gw.exchange_over_http(machine_token, scope="appdb:read")
    assert status == 400 and body["error"] == "invalid_request", body
