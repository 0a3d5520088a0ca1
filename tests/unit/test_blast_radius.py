"""``hoopd blast-radius``: what a leaked token could reach, now and through the
tokens it could mint."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from hoopd import blast_radius_cli
from hoopd.blast_radius import REPORTED_KINDS, BlastRadius, KindReach, Reach, blast_radius, to_json
from hoopd.config import ConnectionConfig, config_from_dict
from hoopd.identity.base import Identity
from hoopd.identity.tokens import new_token
from hoopd.policy import Policy
from tests.unit.test_policy_support import policy_from

CONFIG = {
    "gateway": {"data_dir": "/var/lib/hoopd"},
    "connections": [
        {
            "name": name,
            "listen": f"127.0.0.1:{port}",
            "labels": {"env": env},
            "target": {
                "host": "127.0.0.1",
                "port": 5432,
                "database": name,
                "user": "u",
                "secret": {"env": "PW"},
            },
        }
        for name, port, env in (
            ("appdb", 6432, "prod"),
            ("reports", 6433, "prod"),
            ("dev", 6434, "dev"),
        )
    ],
}


def connections() -> tuple[ConnectionConfig, ...]:
    return config_from_dict(CONFIG, Path("hoopd.toml")).connections


def who(
    actors: Sequence[str] = (), scope: Sequence[str] | None = None, groups: Sequence[str] = ()
) -> Identity:
    return Identity(
        "alice",
        tuple(groups),
        "tok-1",
        tuple(actors),
        scope=None if scope is None else tuple(scope),
        issuer="hoopd",
    )


def kinds_of(reach: Reach, connection: str) -> dict[str, KindReach]:
    (conn,) = [c for c in reach.connections if c.name == connection]
    return {k.kind: k for k in conn.kinds}


def test_without_a_policy_an_unrestricted_token_reaches_everything() -> None:
    found = blast_radius(who(), connections(), None, max_chain_depth=2)
    assert [(c.name, c.granted) for c in found.reach.connections] == [
        ("appdb", "admin"),
        ("reports", "admin"),
        ("dev", "admin"),
    ]
    kinds = kinds_of(found.reach, "appdb")
    assert set(kinds) == set(REPORTED_KINDS)
    assert {k.verdict for k in kinds.values()} == {"allow"}
    assert "empty" not in kinds and "unknown-portal" not in kinds
    assert [child.depth for child in found.children] == [1, 2]


def test_a_scope_limits_connections_and_the_kinds_reported() -> None:
    found = blast_radius(who(scope=["appdb:read", "rep*:write"]), connections(), None, 3)
    assert [(c.name, c.granted) for c in found.reach.connections] == [
        ("appdb", "read"),
        ("reports", "write"),
    ]
    assert found.unreachable == ("dev",)
    read = kinds_of(found.reach, "appdb")
    assert {"select", "copy-out", "show"} <= set(read)
    assert not {"insert", "delete", "drop", "do-block", "unparseable"} & set(read)
    write = kinds_of(found.reach, "reports")
    assert {"insert", "delete", "truncate"} <= set(write)
    assert not {"drop", "grant", "alter-system"} & set(write)
    # A minted token can only narrow the scope: never more than its parent.
    for child in found.children:
        assert [c.name for c in child.connections] == ["appdb", "reports"]


CHAIN_POLICY = """
defaults: [{unmatched: allow}]
rules:
  - name: deep-read-only
    match: {identity: {depth: ">= 2"}, kinds: [insert, delete]}
    action: deny
    message: read only
  - name: no-scrapers
    match: {identity: {actor_chain: "scraper-*"}}
    action: deny
    message: no scrapers
  - name: secrets
    match: {kinds: select, tables: [secrets]}
    action: deny
    message: not the secrets
  - name: prod-drop
    match: {labels: {env: prod}, kinds: drop}
    action: approve
    approvers: [dba]
"""


def chain_policy(tmp_path: Path) -> Policy:
    return policy_from(tmp_path, CHAIN_POLICY)


def test_verdicts_follow_the_policy_per_connection(tmp_path: Path) -> None:
    found = blast_radius(who(), connections(), chain_policy(tmp_path), max_chain_depth=3)
    appdb, dev = kinds_of(found.reach, "appdb"), kinds_of(found.reach, "dev")
    assert (appdb["drop"].verdict, appdb["drop"].rule) == ("approve", "prod-drop")
    assert (dev["drop"].verdict, dev["drop"].rule) == ("allow", None)
    assert appdb["unparseable"].verdict == "deny"


def test_rules_on_particular_tables_are_reported_as_conditional(tmp_path: Path) -> None:
    found = blast_radius(who(), connections(), chain_policy(tmp_path), max_chain_depth=0)
    select = kinds_of(found.reach, "appdb")["select"]
    assert select.verdict == "allow"
    assert [(c.rule, c.action, c.depends_on) for c in select.conditional] == [
        ("secrets", "deny", ("tables",))
    ]
    # Only where the rule's other keys hold: it names select, not insert.
    assert kinds_of(found.reach, "appdb")["insert"].conditional == ()


def test_children_are_judged_at_their_own_depth(tmp_path: Path) -> None:
    found = blast_radius(who(), connections(), chain_policy(tmp_path), max_chain_depth=3)
    assert kinds_of(found.reach, "appdb")["insert"].verdict == "allow"
    by_depth = {child.depth: kinds_of(child, "appdb")["insert"] for child in found.children}
    assert by_depth[1].verdict == "allow"
    assert (by_depth[2].verdict, by_depth[2].rule) == ("deny", "deep-read-only")
    assert by_depth[3].verdict == "deny"
    assert all(child.actor is None for child in found.children)


def test_rules_on_actor_names_are_conditional_only_where_the_actor_is_unknown(
    tmp_path: Path,
) -> None:
    found = blast_radius(who(actors=["ci-job"]), connections(), chain_policy(tmp_path), 2)
    assert found.reach.actor == "ci-job"
    assert all(
        c.rule != "no-scrapers"
        for k in kinds_of(found.reach, "appdb").values()
        for c in k.conditional
    )
    (child,) = found.children
    select = kinds_of(child, "appdb")["select"]
    assert select.verdict == "allow"
    assert ("no-scrapers", "deny", ("identity.actor_chain",)) in [
        (c.rule, c.action, c.depends_on) for c in select.conditional
    ]
    # A scraper already in the chain settles it: every child is denied.
    scraped = blast_radius(who(actors=["scraper-1"]), connections(), chain_policy(tmp_path), 2)
    assert kinds_of(scraped.reach, "appdb")["select"].rule == "no-scrapers"
    assert kinds_of(scraped.children[0], "appdb")["select"].rule == "no-scrapers"


def test_a_rule_on_every_actor_is_not_conditional(tmp_path: Path) -> None:
    policy = policy_from(
        tmp_path,
        """
        defaults: [{unmatched: allow}]
        rules:
          - name: any-actor
            match: {identity: {actor: "*"}, kinds: drop}
            action: deny
            message: no
          - name: bot
            match: {identity: {actor: "bot-?"}, kinds: drop}
            action: approve
            approvers: [dba]
        """,
    )
    (child,) = blast_radius(who(), connections(), policy, 1).children
    drop = kinds_of(child, "dev")["drop"]
    assert (drop.verdict, drop.rule) == ("deny", "any-actor")
    # The approve rule could match some name, but deny beats approve: it changes nothing.
    assert drop.conditional == ()


def test_a_token_at_the_maximum_depth_can_delegate_no_further() -> None:
    found = blast_radius(who(actors=["a", "b"]), connections(), None, max_chain_depth=2)
    assert not found.can_delegate
    assert found.children == ()
    assert to_json(found)["can_delegate"] is False
    lines = list(blast_radius_cli.text_lines(found))
    assert lines[-1] == (
        "tokens it could mint: only narrower ones at depth 2, the maximum chain depth,"
        " which reach no more than this token"
    )


def test_json_keys_are_stable(tmp_path: Path) -> None:
    found = blast_radius(who(scope=["appdb:read"]), connections(), chain_policy(tmp_path), 1)
    data = json.loads(json.dumps(to_json(found)))
    assert list(data) == [
        "identity", "policy", "max_chain_depth", "reach", "unreachable", "can_delegate", "children",
    ]  # fmt: skip
    assert list(data["identity"]) == [
        "subject", "groups", "actor_chain", "actor", "depth", "issuer", "token_id", "scope",
        "expires_at", "lineage",
    ]  # fmt: skip
    assert data["identity"]["scope"] == ["appdb:read"]
    assert data["unreachable"] == ["reports", "dev"]
    (conn,) = data["reach"]["connections"]
    assert list(conn) == ["name", "protocol", "granted", "kinds"]
    select = next(k for k in conn["kinds"] if k["kind"] == "select")
    assert select == {
        "kind": "select",
        "verdict": "allow",
        "rule": None,
        "conditional": [{"rule": "secrets", "action": "deny", "depends_on": ["tables"]}],
    }
    assert [(c["depth"], c["actor"]) for c in data["children"]] == [(1, None)]


def test_text_names_the_chain_and_what_may_differ(tmp_path: Path) -> None:
    found: BlastRadius = blast_radius(
        who(actors=["ci-job"], scope=["appdb:write"], groups=["dev"]),
        connections(),
        chain_policy(tmp_path),
        3,
    )
    lines = list(blast_radius_cli.text_lines(found))
    assert lines[0] == "token: alice > ci-job (groups dev), depth 1, issuer hoopd, id tok-1"
    assert lines[1] == "scope: appdb:write"
    assert "  appdb (postgres): write" in lines
    assert "      secrets (deny) depending on tables; for select" in lines
    assert (
        "        no-scrapers (deny) depending on identity.actor_chain;"
        " for every kind not already denied"
    ) in lines
    assert "  not reachable (the scope grants nothing): reports, dev" in lines
    deny_at_2 = lines.index("  depth 2:")
    assert "      deny: delete, insert" in lines[deny_at_2:]
    assert lines[-1] == "  depth 3: the same as depth 2"


# ------------------------------------------------------------------------- CLI


def run_cli(tmp_path: Path, argv: list[str], env_token: str | None = None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hoopd")
    blast_radius_cli.register(parser.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.MonkeyPatch.context() as mp:
        if env_token is not None:
            mp.setenv(blast_radius_cli.TOKEN_ENV, env_token)
        args = parser.parse_args(argv)
        status = args.func(args)
    return status, out.getvalue(), err.getvalue()


def write_config(tmp_path: Path, sha256: str, scope: str) -> Path:
    policy = tmp_path / "policy"
    policy_from(policy, CHAIN_POLICY)
    path = tmp_path / "hoopd.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "{tmp_path}"
[policy]
directory = "{policy}"
[identity]
max_chain_depth = 2
[[tokens]]
identity = "alice"
sha256 = "{sha256}"
expires = 2099-01-01T00:00:00Z
scope = [{scope}]
[[connections]]
name = "appdb"
listen = "127.0.0.1:6432"
  [connections.target]
  host = "127.0.0.1"
  port = 5432
  database = "app"
  user = "u"
  secret = {{ env = "PW" }}
"""
    )
    return path


def test_cli_verifies_the_token_and_prints_json(tmp_path: Path) -> None:
    token, sha256 = new_token()
    config = write_config(tmp_path, sha256, '"appdb:read"')
    status, out, _ = run_cli(tmp_path, ["blast-radius", "--config", str(config), "--json"], token)
    assert status == 0
    data: dict[str, Any] = json.loads(out)
    assert data["identity"]["subject"] == "alice"
    assert data["identity"]["token_id"].startswith("st:")
    assert [c["granted"] for c in data["reach"]["connections"]] == ["read"]
    assert [c["depth"] for c in data["children"]] == [1, 2]


def test_cli_refuses_an_unknown_token(tmp_path: Path) -> None:
    _, sha256 = new_token()
    config = write_config(tmp_path, sha256, '"appdb:read"')
    other, _ = new_token()
    status, out, err = run_cli(tmp_path, ["blast-radius", other, "--config", str(config)])
    assert status == 1
    assert out == ""
    assert "token not accepted" in err
