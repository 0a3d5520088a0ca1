"""The shared token store: revocations seen across processes, what each kind of
revocation covers, the subtree of a token, and the audit events."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from hoopd import revocation_bus
from hoopd.config import TokenConfig
from hoopd.identity.authenticator import Authenticator
from hoopd.identity.base import Identity
from hoopd.identity.tokens import StaticTokenVerifier, token_sha256
from hoopd.tokens.store import TokenStore
from tests.unit.test_token_exchange import ALICE, run_cli, write_config


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(
    token_id: str,
    *,
    subject: str = "alice",
    actors: tuple[str, ...] = (),
    lineage: tuple[str, ...] = (),
    issued_at: float = 1_000_000.0,
    expires_at: float = 1_000_900.0,
) -> Identity:
    return Identity(
        subject=subject,
        groups=("dba",),
        token_id=token_id,
        actor_chain=actors,
        scope=("db:read",),
        expires_at=expires_at,
        issuer="hoopd",
        lineage=lineage,
        issued_at=issued_at,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore.open(tmp_path, clock=clock)


def test_two_stores_on_one_file_see_each_others_revocations(tmp_path: Path) -> None:
    gateway = TokenStore.open(tmp_path)
    cli = TokenStore.open(tmp_path)
    victim = token("gt:aaaaaaaaaaaaaaaaaaaa")
    assert gateway.revocation_for(victim) is None

    first = cli.revoke_token(victim.token_id, "cli:ops", "laptop stolen")
    seen = gateway.revocation_for(victim)
    assert seen == first
    assert (seen.kind, seen.value, seen.revoked_by, seen.reason) == (
        "token",
        victim.token_id,
        "cli:ops",
        "laptop stolen",
    )

    second = gateway.revoke_subject("bob", "alice", "")
    assert [r.id for r in cli.revocations_since(0)] == [first.id, second.id]
    assert cli.revocations_since(first.id) == [second]
    assert cli.revocations_since(second.id) == []


def test_revoking_an_ancestor_revokes_every_descendant_of_any_issuer(store: TokenStore) -> None:
    root = token("st:0123456789ab", issued_at=0.0)
    child = token("gt:child-000000000000000", lineage=(root.token_id,), actors=("bot",))
    grandchild = token(
        "gt:grandchild-0000000000",
        lineage=(root.token_id, child.token_id),
        actors=("bot", "sub"),
    )
    sibling = token("gt:sibling-0000000000000", lineage=(root.token_id,))
    store.revoke_token(child.token_id, "ops", "")
    assert store.revocation_for(root) is None
    assert store.revocation_for(sibling) is None
    assert store.revocation_for(child) is not None
    assert store.revocation_for(grandchild) is not None

    oidc = token("oidc:corp:xyz", issued_at=0.0)
    store.revoke_token("oidc:corp:xyz", "ops", "")
    assert store.revocation_for(oidc) is not None


def test_a_subject_revocation_covers_tokens_issued_until_then(
    store: TokenStore, clock: Clock
) -> None:
    before = token("gt:before-00000000000000", issued_at=clock.now - 10)
    same_second = token("gt:same-0000000000000000", issued_at=clock.now)
    static = token("st:0123456789ab", issued_at=0.0)  # issue time unknown: revoked
    other = token("gt:other-00000000000000", subject="bob", issued_at=clock.now - 10)
    store.revoke_subject("alice", "ops", "left the company")
    after = token("gt:after-000000000000000", issued_at=clock.now + 1)

    assert store.revocation_for(before) is not None
    assert store.revocation_for(same_second) is not None
    assert store.revocation_for(static) is not None
    assert store.revocation_for(other) is None
    assert store.revocation_for(after) is None


def test_an_actor_revocation_covers_any_hop_of_the_chain_issued_until_then(
    store: TokenStore, clock: Clock
) -> None:
    store.revoke_actor("rogue-agent", "ops", "misbehaved")
    earlier = clock.now - 5
    assert store.revocation_for(
        token("gt:a-0000000000000000000", actors=("rogue-agent",), issued_at=earlier)
    )
    assert store.revocation_for(
        token("gt:b-0000000000000000000", actors=("rogue-agent", "helper"), issued_at=earlier)
    )
    # Not an actor in the chain: the subject of the same name is not an actor.
    assert (
        store.revocation_for(
            token("gt:c-000000000000000000", subject="rogue-agent", issued_at=earlier)
        )
        is None
    )
    assert (
        store.revocation_for(
            token("gt:d-0000000000000000000", actors=("rogue-agent",), issued_at=clock.now + 1)
        )
        is None
    )


def test_subtree_lists_unexpired_descendants_and_expired_ones_are_pruned(
    store: TokenStore, clock: Clock
) -> None:
    root = "st:0123456789ab"
    child = token("gt:child-000000000000000", lineage=(root,))
    grandchild = token("gt:grandchild-0000000000", lineage=(root, child.token_id))
    short = token("gt:short-000000000000000", lineage=(root,), expires_at=clock.now + 10)
    for t in (child, grandchild, short):
        store.record_minted(t, t.lineage[-1], {})
    assert set(store.subtree(root)) == {child.token_id, grandchild.token_id, short.token_id}
    assert store.subtree(child.token_id) == [grandchild.token_id]
    assert store.subtree(grandchild.token_id) == []

    clock.now += 60
    store.record_minted(token("gt:later-000000000000000", issued_at=clock.now), root, {})
    rows = sqlite3.connect(store.directory / "tokens.db").execute(
        "SELECT token_id FROM issued WHERE token_id = ?", (short.token_id,)
    )
    assert rows.fetchall() == []  # pruned
    assert short.token_id not in store.subtree(root)


def test_events_record_ids_and_cannot_be_rewritten(store: TokenStore) -> None:
    minted = token("gt:child-000000000000000", lineage=("st:0123456789ab",), actors=("bot",))
    store.record_minted(minted, "st:0123456789ab", {"asked": {"scope": "db:read"}})
    store.record_refused("st:0123456789ab", "alice", "alice", {"error": "invalid_scope"})
    store.revoke_actor("bot", "ops", "why")
    events = store.events()
    assert [(e.kind, e.token_id, e.subject, e.actor) for e in events] == [
        ("minted", minted.token_id, "alice", "bot"),
        ("refused", "st:0123456789ab", "alice", "alice"),
        ("revoked", None, None, "bot"),
    ]
    assert events[0].detail == {"asked": {"scope": "db:read"}}
    assert store.events(events[1].id) == events[2:]

    db = sqlite3.connect(store.directory / "tokens.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET kind = 'minted'")
    assert len(store.events()) == 3


def test_the_store_file_is_private(tmp_path: Path) -> None:
    TokenStore.open(tmp_path / "new").close()
    assert stat.S_IMODE((tmp_path / "new" / "tokens.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_an_empty_revocation_is_refused(store: TokenStore) -> None:
    with pytest.raises(ValueError):
        store.revoke_subject("", "ops", "")
    assert store.revocations_since(0) == []


async def test_a_revoked_static_token_is_refused_at_login(store: TokenStore) -> None:
    static = StaticTokenVerifier([TokenConfig("alice", (), token_sha256(ALICE), 4e9)])
    checked = Authenticator(static, gateway_issuer="hoopd", revocations=store)
    alice = await checked.verify(ALICE)
    assert alice is not None
    store.revoke_token(alice.token_id, "ops", "")
    assert await static.verify(ALICE) is not None
    assert await checked.verify(ALICE) is None


def test_hoopd_revoke_writes_to_the_configured_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    announced: list[Path] = []
    monkeypatch.setattr(revocation_bus, "announce", announced.append)
    config = write_config(tmp_path)
    store = TokenStore.open(tmp_path / "data")
    static_id = "st:" + token_sha256(ALICE)[:12]  # alice's [[tokens]] entry
    child = token("gt:child-000000000000000", lineage=(static_id,), expires_at=4e9)
    store.record_minted(child, static_id, {})

    assert run_cli(["revoke", static_id, "--reason", "lost", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert static_id in out and child.token_id in out
    assert run_cli(["revoke", "--subject", "bob", "--config", str(config)]) == 0
    assert run_cli(["revoke", "--actor", "bot", "--config", str(config)]) == 0
    assert [(r.kind, r.value) for r in store.revocations_since(0)] == [
        ("token", static_id),
        ("subject", "bob"),
        ("actor", "bot"),
    ]
    assert store.revocations_since(0)[0].reason == "lost"
    assert announced == [tmp_path / "data"] * 3
    with pytest.raises(SystemExit):
        run_cli(["revoke", "gt:x", "--subject", "bob", "--config", str(config)])


def test_hoopd_revoke_refuses_an_id_it_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    for mistyped in ("gt:child-000000000000001", "st:0123456789ab", "child-0000"):
        assert run_cli(["revoke", mistyped, "--config", str(config)]) == 1
        assert "nothing was revoked" in capsys.readouterr().err
    assert TokenStore.open(tmp_path / "data").revocations_since(0) == []


def test_the_store_says_why_a_token_was_revoked(store: TokenStore) -> None:
    child = token("gt:child-000000000000000", lineage=("st:0123456789ab",))
    assert store.revocation_reason(child) is None
    store.revoke_token("st:0123456789ab", "ops", "laptop stolen")
    assert store.revocation_reason(child) == (
        "token st:0123456789ab was revoked by ops: laptop stolen"
    )
