"""SSH logins with a public key: keys bound to an identity in the configuration, and
short-lived certificates hoopd's CA issues for a token.

Real OpenSSH clients (``ssh``, ``ssh-keygen``), curl and the ``hoopd`` CLI against
the gateway, a real sshd behind it; each test looks at the target's side and at
what the gateway recorded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hoopd.identity.ssh_wire import Reader
from hoopd.tokens.ssh_cert import IDENTITY_EXTENSION, read_certificate
from hoopd.tokens.store import TokenStore
from tests.integration.test_ssh_engine import (
    CONNECTION,
    SshGateway,
    new_session_records,
    remote_sleeper,
)
from tests.support.gateway import (
    Token,
    gateway_token_id,
    session_id_of,
    session_ids,
    wait_for_new_session,
)
from tests.support.ports import free_port
from tests.support.sshclient import SshClient
from tests.support.sshserver import SshServer

POLICY = """
rules:
  - name: everything
    action: allow
"""
DELAY = 0.4


@dataclass(frozen=True)
class Binding:
    """One ``[[ssh_keys]]`` entry."""

    identity: str
    keys: Sequence[str]
    groups: Sequence[str] = ()
    expires: str = "2099-01-01T00:00:00Z"
    scope: Sequence[str] | None = None

    def toml(self) -> list[str]:
        lines = [
            "[[ssh_keys]]",
            f"identity = {json.dumps(self.identity)}",
            "groups = " + json.dumps(list(self.groups)),
            "keys = " + json.dumps(list(self.keys)),
            f"expires = {self.expires}",
        ]
        if self.scope is not None:
            lines.append("scope = " + json.dumps(list(self.scope)))
        return [*lines, ""]


class KeyedGateway(SshGateway):
    """The SSH test gateway with ``[[ssh_keys]]`` and the certificate lifetime limit."""

    def __init__(
        self,
        sshd: SshServer,
        workdir: Path,
        *,
        bindings: Sequence[Binding] = (),
        certificate_max_ttl: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(sshd, workdir, **options)
        self.bindings = list(bindings)
        self.certificate_max_ttl = certificate_max_ttl

    def write_config(self) -> None:
        super().write_config()
        lines = [""]
        for binding in self.bindings:
            lines += binding.toml()
        if self.certificate_max_ttl is not None:
            lines += ["[identity]", f"ssh_certificate_max_ttl_seconds = {self.certificate_max_ttl}"]
        with open(self.config_path, "a") as config:
            config.write("\n".join(lines) + "\n")

    def keyed_client(self, workdir: Path, key: Path, user: str = CONNECTION) -> SshClient:
        """A client that offers only ``key`` (and ``key``-cert.pub when it exists)."""
        return SshClient(
            "127.0.0.1",
            self.ssh_port,
            user,
            workdir,
            identity_file=key,
            known_hosts=[self.host_key_line()],
        )


def keygen(path: Path, comment: str = "test", key_type: str = "ed25519") -> str:
    """A new key pair (ed25519 unless ``key_type`` says otherwise) at ``path``;
    returns the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def fingerprint(public_line: str) -> str:
    """What ``ssh-keygen -l`` prints for a public key line."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class Keys:
    """The key pairs the module's gateway binds, made before it starts."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.deployer = directory / "deployer"
        self.expired = directory / "expired"
        self.narrow = directory / "narrow"
        self.revoked = directory / "revoked"
        self.lines = {
            path.name: keygen(path, path.name)
            for path in (self.deployer, self.expired, self.narrow, self.revoked)
        }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def gateway(
    sshd: SshServer,
    keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KeyedGateway]:
    workdir = tmp_path_factory.mktemp("gw")
    policy_dir = workdir / "policy"
    policy_dir.mkdir()
    (policy_dir / "rules.yaml").write_text(POLICY)
    bindings = [
        Binding("deploy-bot", [keys.lines["deployer"]], ["ci"], scope=[f"{CONNECTION}:write"]),
        Binding("old-bot", [keys.lines["expired"]], expires="2020-01-01T00:00:00Z"),
        Binding("narrow-bot", [keys.lines["narrow"]], scope=["elsewhere:admin"]),
        Binding("gone-bot", [keys.lines["revoked"]]),
    ]
    tokens = [Token("alice", ("dev",)), Token("bob", ("ops",))]
    gw = KeyedGateway(
        sshd,
        workdir,
        bindings=bindings,
        certificate_max_ttl=1800,
        policy_dir=policy_dir,
        tokens=tokens,
        admin_port=free_port(),
        auth_failure_delay_seconds=DELAY,
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def scratch(sshd: SshServer) -> Iterator[str]:
    name = "k-" + secrets.token_hex(6)
    sshd.run_as_target(f"mkdir {name}")
    yield name
    sshd.remove_target_path(name)


def certificate(gateway: KeyedGateway, token: str, public_line: str, **extra: str) -> Any:
    """``POST /v1/ssh/certificate`` with curl: the status and the JSON answer."""
    form = ["--data-urlencode", f"public_key={public_line}"]
    for name, value in extra.items():
        form += ["--data-urlencode", f"{name}={value}"]
    return gateway.curl("-H", f"Authorization: Bearer {token}", *form, "/v1/ssh/certificate")


def write_certificate(key: Path, line: str) -> Path:
    path = key.with_name(key.name + "-cert.pub")
    path.write_text(line + "\n")
    return path


def refused_sessions(gateway: KeyedGateway, before: set[str]) -> list[dict[str, Any]]:
    fresh = [s for s in gateway.sessions() if session_id_of(s) not in before]
    return [s for s in fresh if s["end_reason"] == "token rejected"]


# ------------------------------------------------------------------ bound keys


def test_a_bound_key_logs_in_as_its_identity(
    gateway: KeyedGateway, sshd: SshServer, keys: Keys, scratch: str, tmp_path: Path
) -> None:
    before = session_ids(gateway)
    client = gateway.keyed_client(tmp_path / "c", keys.deployer)
    done = client.ssh(f"cd {scratch} && echo deployed > marker && id -un").check()
    assert done.out == f"{sshd.user}\n"
    assert sshd.read_target_file(f"{scratch}/marker") == b"deployed\n"

    session, records = new_session_records(gateway, before)
    identity = session["identity"]
    assert identity["subject"] == "deploy-bot" and identity["groups"] == ["ci"]
    assert identity["token_id"] == "key:" + fingerprint(keys.lines["deployer"])
    assert identity["scope"] == [f"{CONNECTION}:write"] and identity["issuer"] == "static"
    statement = next(r["body"] for r in records if r["kind"] == "statement")
    assert statement["kind"] == "exec" and statement["verdict"]["action"] == "allow"


def test_the_scope_of_a_bound_key_still_decides_each_command(
    gateway: KeyedGateway, keys: Keys, tmp_path: Path
) -> None:
    # write reaches exec, but a shell needs admin: refused on the channel, not at login.
    client = gateway.keyed_client(tmp_path / "c", keys.deployer)
    done = client.ssh(options=["-T"], input=b"exit\n")
    assert done.returncode == 1
    assert "hoopd:" in done.err


@pytest.mark.parametrize("which", ["unbound", "expired", "narrow"])
def test_keys_that_may_not_log_in_are_refused_like_a_wrong_token(
    gateway: KeyedGateway, keys: Keys, tmp_path: Path, which: str
) -> None:
    key = {"expired": keys.expired, "narrow": keys.narrow}.get(which)
    if key is None:
        key = tmp_path / "unbound"
        keygen(key)
    before = session_ids(gateway)
    done = gateway.keyed_client(tmp_path / "c", key).ssh("true")
    assert done.returncode == 255
    assert "Permission denied" in done.err
    # ssh only asked whether the key would do (answered at once); the refusal is
    # recorded when the connection ends without a login.
    deadline = time.monotonic() + 10
    while not (refused := refused_sessions(gateway, before)):
        assert time.monotonic() < deadline, "the refused login was not recorded"
        time.sleep(0.1)
    public = key.with_name(key.name + ".pub").read_text()
    assert refused[0]["attributes"]["key"] == fingerprint(public)
    assert refused[0]["attributes"]["client_user"] == CONNECTION


def test_a_revoked_subject_is_refused_and_its_key_can_be_revoked_alone(
    gateway: KeyedGateway, keys: Keys, tmp_path: Path
) -> None:
    client = gateway.keyed_client(tmp_path / "c", keys.revoked)
    assert client.ssh("true").returncode == 0
    config = str(gateway.config_path)
    done = gateway.cli("revoke", "--subject", "gone-bot", "--config", config, "--reason", "t")
    assert done.returncode == 0, done.stderr
    assert client.ssh("true").returncode == 255

    wrong = gateway.cli("revoke", "key:SHA256:nosuchkey", "--config", config)
    assert wrong.returncode == 1 and "no SSH key" in wrong.stderr


# ---------------------------------------------------------------- certificates


def test_a_certificate_from_the_endpoint_logs_in_with_the_chain(
    gateway: KeyedGateway, sshd: SshServer, scratch: str, tmp_path: Path
) -> None:
    alice = gateway.tokens[0]
    child = gateway.exchanged(alice, "--scope", f"{CONNECTION}:write", "--actor", "agent-7")
    key = tmp_path / "agent_ed25519"
    public = keygen(key, "agent-7")
    status, body = certificate(gateway, child, public, ttl="600")
    assert status == 200, body
    assert body["scope"] == f"{CONNECTION}:write" and 590 <= body["expires_in"] <= 600
    write_certificate(key, body["certificate"])
    listed = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(key) + "-cert.pub"], capture_output=True, text=True
    )
    assert f'Key ID: "{body["token_id"]}"' in listed.stdout
    assert "user certificate" in listed.stdout and "permit-pty" in listed.stdout

    before = session_ids(gateway)
    client = gateway.keyed_client(tmp_path / "c", key)
    client.ssh(f"echo from-a-cert > {scratch}/cert-marker").check()
    assert sshd.read_target_file(f"{scratch}/cert-marker") == b"from-a-cert\n"

    session, _records = new_session_records(gateway, before)
    identity = session["identity"]
    assert identity["subject"] == "alice" and identity["groups"] == ["dev"]
    assert identity["actor_chain"] == ["agent-7"]
    assert identity["token_id"] == body["token_id"]
    assert identity["lineage"][-1] == gateway_token_id(child)
    assert identity["scope"] == [f"{CONNECTION}:write"]
    assert identity["expires_at"] == body["expires_at"]

    # Issuing was recorded like an exchange, naming the key it certified.
    events = _token_events(gateway)
    minted = [e for e in events if e["token_id"] == body["token_id"]]
    assert minted and minted[0]["kind"] == "minted"
    assert minted[0]["detail"]["ssh_certificate"]["key"] == fingerprint(public)
    assert minted[0]["detail"]["parent"] == gateway_token_id(child)


def test_the_endpoint_refuses_what_it_must(gateway: KeyedGateway, tmp_path: Path) -> None:
    public = keygen(tmp_path / "k")
    status, body = gateway.curl("--data-urlencode", f"public_key={public}", "/v1/ssh/certificate")
    assert status == 401 and body["error"] == "invalid_token"
    status, body = certificate(gateway, "not-a-token", public)
    assert status == 401
    alice = gateway.tokens[0].value
    status, body = certificate(gateway, alice, "ssh-ed25519 bm90IGEga2V5")
    assert status == 400 and body["error"] == "invalid_request"
    status, body = certificate(gateway, alice, public, scope=f"{CONNECTION}:write")
    assert status == 200  # a static token without scope may narrow to any
    narrow = gateway.exchanged(alice, "--scope", f"{CONNECTION}:read")
    status, body = certificate(gateway, narrow, public, scope=f"{CONNECTION}:write")
    assert status == 400 and body["error"] == "invalid_scope"
    # No longer than the configured limit (1800 s), nor the token (here 120 s).
    short = gateway.exchanged(alice, "--scope", f"{CONNECTION}:write", "--ttl", "120")
    status, body = certificate(gateway, short, public, ttl="100000")
    assert status == 200 and body["expires_in"] <= 120
    status, body = certificate(gateway, alice, public, scope=f"{CONNECTION}:read")
    assert status == 200 and 1790 <= body["expires_in"] <= 1800


def test_the_cli_writes_key_cert_pub_for_plain_ssh(gateway: KeyedGateway, tmp_path: Path) -> None:
    bob = gateway.tokens[1]
    key = tmp_path / "id_ed25519"
    keygen(key)
    done = gateway.cli(
        "ssh-cert", str(key), "--admin", gateway.admin_url, "--scope", f"{CONNECTION}:write",
        "--ttl", "300",
        extra_env={"HOOPD_TOKEN": bob.value},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(key) + "-cert.pub" in done.stdout
    before = session_ids(gateway)
    assert gateway.keyed_client(tmp_path / "c", key).ssh("whoami").returncode == 0
    session = wait_for_new_session(gateway, before)
    assert session["identity"]["subject"] == "bob"
    assert session["identity"]["lineage"] == [bob_id(gateway)]


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_certificates_work_for_rsa_and_ecdsa_keys_too(
    gateway: KeyedGateway, tmp_path: Path, key_type: str
) -> None:
    bob = gateway.tokens[1]
    key = tmp_path / f"id_{key_type}"
    public = keygen(key, key_type=key_type)
    status, body = certificate(gateway, bob.value, public, ttl="300", scope=f"{CONNECTION}:write")
    assert status == 200, body
    cert_line = body["certificate"]
    assert cert_line.startswith(f"{public.split()[0]}-cert-v01@openssh.com ")
    write_certificate(key, cert_line)
    before = session_ids(gateway)
    done = gateway.keyed_client(tmp_path / "c", key).ssh("whoami")
    assert done.returncode == 0, done.stderr
    session = wait_for_new_session(gateway, before)
    assert session["identity"]["subject"] == "bob"
    assert session["identity"]["token_id"] == body["token_id"]


def bob_id(gateway: KeyedGateway) -> str:
    return "st:" + gateway.tokens[1].sha256[:12]


def test_revoking_the_token_ends_live_sessions_and_refuses_its_certificates(
    gateway: KeyedGateway, sshd: SshServer, tmp_path: Path
) -> None:
    alice = gateway.tokens[0]
    child = gateway.exchanged(alice, "--scope", f"{CONNECTION}:write", "--actor", "runner")
    key = tmp_path / "key"
    status, body = certificate(gateway, child, keygen(key))
    assert status == 200, body
    write_certificate(key, body["certificate"])
    client = gateway.keyed_client(tmp_path / "c", key)

    before = session_ids(gateway)
    with remote_sleeper(client, sshd) as (proc, _sleeper):
        wait_for_new_session(gateway, before)
        # Revoke the token the certificate was issued for (not the certificate).
        done = gateway.cli(
            "revoke", gateway_token_id(child), "--config", str(gateway.config_path),
            "--reason", "agent finished",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert body["token_id"] in done.stdout  # listed as derived from it
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 255
    assert "revoked" in err.decode()
    _session, records = new_session_records(gateway, before)
    assert any(r["kind"] == "revoked" for r in records)
    assert records[-1]["body"]["reason"] == "token revoked"

    again = client.ssh("true")
    assert again.returncode == 255 and "Permission denied" in again.err


def test_a_certificate_from_another_ca_is_refused(gateway: KeyedGateway, tmp_path: Path) -> None:
    # A genuine certificate first, whose identity extension the forgery copies.
    key = tmp_path / "key"
    public = keygen(key)
    status, body = certificate(
        gateway, gateway.tokens[0].value, public, scope=f"{CONNECTION}:write"
    )
    assert status == 200, body
    identity_json = _identity_extension(body["certificate"])

    ca = tmp_path / "other_ca"
    keygen(ca, "other-ca")
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca), "-I", body["token_id"], "-V", "-5m:+30m",
         "-O", f"extension:identity@hoopd={identity_json}", str(key) + ".pub"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    before = session_ids(gateway)
    done = gateway.keyed_client(tmp_path / "c", key).ssh("true")
    assert done.returncode == 255 and "Permission denied" in done.err
    assert "not signed by this gateway's CA" in gateway.stderr_text()
    assert not [s for s in gateway.sessions() if s["id"] not in before and s.get("identity")]


def test_the_ca_is_created_once_and_survives_a_restart(sshd: SshServer, tmp_path: Path) -> None:
    token = Token("carol", ("ops",), scope=(f"{CONNECTION}:write",))
    gw = KeyedGateway(sshd, tmp_path / "gw", tokens=[token])
    key = tmp_path / "key"
    keygen(key)
    with gw:
        done = gw.cli(
            "ssh-cert", str(key), "--config", str(gw.config_path),
            extra_env={"HOOPD_TOKEN": token.value},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        ca = gw.data_dir / "keys" / "ssh_user_ca"
        assert ca.stat().st_mode & 0o777 == 0o600
        first = ca.read_bytes()
        assert gw.keyed_client(tmp_path / "c1", key).ssh("true").returncode == 0
    with gw:
        assert ca.read_bytes() == first
        assert gw.keyed_client(tmp_path / "c2", key).ssh("true").returncode == 0


# ------------------------------------------------------------------- helpers


def _identity_extension(line: str) -> str:
    """The JSON of a certificate's identity extension."""
    cert = read_certificate(base64.b64decode(line.split()[1]))
    return Reader(cert.extensions[IDENTITY_EXTENSION]).text()


def _token_events(gateway: KeyedGateway) -> list[dict[str, Any]]:
    with contextlib.closing(TokenStore.open(gateway.data_dir)) as store:
        return [
            {"kind": e.kind, "token_id": e.token_id, "detail": e.detail} for e in store.events()
        ]
