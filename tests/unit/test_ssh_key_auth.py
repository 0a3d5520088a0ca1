"""The SSH server's public-key logins, driven as asyncssh drives them: a query
(unsigned) or a signed request, the gateway's check first, asyncssh's after; which
refusals wait, which are recorded, and when."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import asyncssh
import pytest

from hoopd.config import ConnectionConfig, SecretRef, SshTargetConfig, TargetConfig
from hoopd.gateway import Gateway, Listener
from hoopd.identity.authenticator import Login
from hoopd.identity.base import Identity
from hoopd.identity.ssh_wire import fingerprint, string
from hoopd.protocols.ssh.auth import GatewayServer
from hoopd.protocols.ssh.bridge import open_loop, to_trio

DELAY = 0.2
BOUND = string("ssh-ed25519") + string(b"\x01" * 32)
UNKNOWN = string("ssh-ed25519") + string(b"\x02" * 32)
ALICE = Identity("alice", ("dev",), "key:SHA256:x", scope=("web:write",))


class Recorder:
    def __init__(self, sessions: list[dict[str, Any]], attributes: Mapping[str, Any]) -> None:
        self.session: dict[str, Any] = {"attributes": dict(attributes), "records": [], "end": None}
        sessions.append(self.session)

    async def append(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        self.session["records"] += list(records)

    async def close(self, reason: str) -> None:
        self.session["end"] = reason


class Journal:
    def __init__(self) -> None:
        self.sessions: list[dict[str, Any]] = []

    def start_session(self, **fields: Any) -> Recorder:
        return Recorder(self.sessions, fields["attributes"])


class Keys:
    """The authenticator's key check: only BOUND logs in."""

    async def login_with_public_key(self, blob: bytes, connection: str) -> Login | None:
        return Login(ALICE, 1) if blob == BOUND and connection == "web" else None


def server() -> tuple[GatewayServer, Journal]:
    ssh = SshTargetConfig("key", "ssh-ed25519 AAAA", None, ())
    target = TargetConfig("127.0.0.1", 22, "", "deploy", SecretRef(file=Path("/k")), ssh=ssh)
    web = ConnectionConfig("web", "ssh", "127.0.0.1", 2222, {}, target)
    journal = Journal()
    gateway = SimpleNamespace(
        authenticator=Keys(),
        config=SimpleNamespace(auth_failure_delay_seconds=DELAY),
        journal=journal,
    )
    listener = Listener("127.0.0.1", 2222, "ssh", (web,))
    return GatewayServer(cast(Gateway, gateway), listener, "127.0.0.1:5555", channels), journal


def channels() -> asyncssh.SSHServerSession[bytes]:
    raise AssertionError("no channel is opened here")


async def request(
    gw: GatewayServer, key: bytes, *, signed: bool, proven: bool = True, user: str = "web"
) -> tuple[bool, float, bool]:
    """One request: whether it succeeded, how long it took, and whether asyncssh's
    own hooks (validate_public_key) said yes while asyncssh checked."""
    hooks: list[bool] = []

    async def asyncssh_check() -> bool:
        hooks.append(gw.validate_public_key(user, cast(asyncssh.SSHKey, None)))
        return proven

    started = time.monotonic()
    ok = await to_trio(gw._validate_key)(user, key, b"signed" if signed else b"", asyncssh_check)
    return ok, time.monotonic() - started, hooks == [True]


async def test_a_bound_key_is_asked_about_then_logs_in() -> None:
    async with open_loop():
        gw, journal = server()
        ok, _took, hooked = await request(gw, BOUND, signed=False)
        assert ok and hooked and gw.accepted is None  # a query logs nobody in
        ok, _took, hooked = await request(gw, BOUND, signed=True)
        assert ok and hooked
        assert gw.accepted is not None and gw.accepted.identity == ALICE
        assert gw.accepted.selected.login == "deploy" and gw.accepted.granted_level == 1
        assert journal.sessions == []
        # Outside a request, asyncssh's hooks say no.
        assert not gw.validate_public_key("web", cast(asyncssh.SSHKey, None))
        assert not gw.validate_ca_key("web", cast(asyncssh.SSHKey, None))


async def test_a_query_about_an_unknown_key_is_answered_at_once_and_recorded_if_no_login() -> None:
    async with open_loop():
        gw, journal = server()
        ok, took, hooked = await request(gw, UNKNOWN, signed=False)
        assert not ok and not hooked and took < DELAY
        assert journal.sessions == []
        await to_trio(gw.login_failed)()
        (refused,) = journal.sessions
        assert refused["attributes"] == {
            "client_user": "web",
            "key_type": "ssh-ed25519",
            "key": fingerprint(UNKNOWN),
        }
        assert refused["records"] == [("auth", {"outcome": "denied"})]
        assert refused["end"] == "token rejected"


async def test_a_query_refused_before_a_login_is_not_a_refused_login() -> None:
    # OpenSSH asks about the plain key before offering its certificate.
    async with open_loop():
        gw, journal = server()
        assert not (await request(gw, UNKNOWN, signed=False))[0]
        assert (await request(gw, BOUND, signed=True))[0]
        await to_trio(gw.login_failed)()
        assert journal.sessions == []


@pytest.mark.parametrize(
    ("key", "proven", "user"),
    [(UNKNOWN, True, "web"), (BOUND, False, "web"), (BOUND, True, "nosuch")],
    ids=["unknown key", "bad signature", "unknown connection"],
)
async def test_a_refused_signed_request_waits_and_is_recorded(
    key: bytes, proven: bool, user: str
) -> None:
    async with open_loop():
        gw, journal = server()
        ok, took, _hooked = await request(gw, key, signed=True, proven=proven, user=user)
        assert not ok and took >= DELAY and gw.accepted is None
        (refused,) = journal.sessions
        assert refused["attributes"]["key"] == fingerprint(key)
        assert refused["end"] == "token rejected"
