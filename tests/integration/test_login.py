"""``hoopd login`` end to end: a real OIDC provider (npm oidc-provider), a real
gateway (``hoopd serve``) and real psql against PostgreSQL 15.

``hoopd login`` runs as a subprocess; the test reads the address it prints on standard
error and plays the person in the browser (approve or deny at the provider's pages).
Checked: ``--print`` gives a token psql logs in with, the token file is 0600 in a 0700
directory, a pgpass line works without PGPASSWORD and keeps the file's other lines,
the kubeconfig entry, refusals and usage errors with their exit status, and that the
provider's access token appears in no output and no written file.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hoopd.identity import login_files
from tests.support.gateway import REPO_ROOT, Gateway, running_gateway
from tests.support.oidc import AUDIENCE, DEVICE_CLIENT_ID, OidcProvider
from tests.support.pgserver import Completed, PgServer, clean_client_env
from tests.support.ports import dead_port, free_port

LOGIN_TIMEOUT_SECONDS = 60.0
JWT = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
COMPLETE_URI = re.compile(r"http://127\.0\.0\.1:\d+/\S*user_code=\S+")


def oidc_issuer(issuer: str) -> dict[str, Any]:
    """The ``[[oidc.issuers]]`` entry for hoopd login: alice (group dba) may get
    ``appdb:read`` and ``appdb:write``."""
    return {
        "name": "test-idp",
        "issuer": issuer,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "client_id": DEVICE_CLIENT_ID,
        "scope": ["appdb:read"],
        "group_scopes": {"dba": ["appdb:write"]},
    }


@pytest.fixture(scope="module")
def gw(
    pg: PgServer, provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with running_gateway(
        pg,
        tmp_path_factory.mktemp("login-gw"),
        admin_port=free_port(),
        oidc_issuers=[oidc_issuer(provider.issuer)],
    ) as gateway:
        yield gateway


def login(
    gw: Gateway,
    tmp_path: Path,
    *args: str,
    user: Callable[[str], None] | None = None,
    config: Path | None = None,
) -> Completed:
    """Run ``hoopd login --config ... ARGS`` with ``$XDG_CONFIG_HOME`` in ``tmp_path``;
    ``user`` is given the complete verification URI once it is printed."""
    env = clean_client_env({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    out_path = tmp_path / "login.stdout"
    config_file = config or gw.config_path
    argv = [sys.executable, "-m", "hoopd", "login", "--config", str(config_file), *args]
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    uris: queue.Queue[str | None] = queue.Queue()

    def pump(stream: Any) -> None:
        for line in stream:
            lines.append(line)
            if found := COMPLETE_URI.search(line):
                uris.put(found.group(0))
        uris.put(None)

    reader = threading.Thread(target=pump, args=(proc.stderr,), daemon=True)
    reader.start()
    try:
        uri = uris.get(timeout=LOGIN_TIMEOUT_SECONDS)
        if uri is not None and user is not None:
            user(uri)
        proc.wait(timeout=LOGIN_TIMEOUT_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    return Completed(proc.returncode, out_path.read_text(), "".join(lines))


def approve(provider: OidcProvider) -> Callable[[str], None]:
    return lambda uri: provider.approve_device(uri, login="alice")


def claims(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    padded = segment + "=" * (-len(segment) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


def assert_no_provider_token(provider: OidcProvider, *texts: str) -> None:
    """No JWT issued by the provider (its access or id token) is in any of ``texts``."""
    for text in texts:
        for candidate in JWT.findall(text):
            try:
                issuer = claims(candidate).get("iss")
            except ValueError:
                continue
            assert issuer != provider.issuer, "a provider token leaked"


def psql_select(gw: Gateway, env: dict[str, str]) -> Completed:
    """psql through the gateway with ``env`` (PGPASSWORD or PGPASSFILE) and no other PG*."""
    argv = ["psql", "-X", "-tA", "-d", gw.conninfo("appdb"), "-c", "select 40 + 2"]
    done = subprocess.run(
        argv, env=clean_client_env(env), capture_output=True, text=True, timeout=60
    )
    return Completed(done.returncode, done.stdout, done.stderr)


def test_print_gives_a_token_that_psql_uses(
    gw: Gateway, provider: OidcProvider, tmp_path: Path
) -> None:
    done = login(gw, tmp_path, "--print", "--scope", "appdb:read", "--ttl", "600",
                 user=approve(provider))  # fmt: skip

    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n"  # the token alone
    gateway_claims = claims(token)
    assert gateway_claims["sub"] == "alice" and gateway_claims["scope"] == "appdb:read"
    assert gateway_claims["exp"] - gateway_claims["iat"] <= 600
    assert "enter the code" in done.stderr and "Waiting" in done.stderr
    assert "Signed in as alice" in done.stderr and "expires" in done.stderr
    assert token not in done.stderr
    assert not (tmp_path / "xdg").exists()  # --print writes nothing
    assert_no_provider_token(provider, done.stdout, done.stderr)
    lineage = gateway_claims["hoopd_lineage"]
    assert lineage[0].startswith("oidc:test-idp:")  # exchanged from the provider's token

    used = psql_select(gw, {"PGPASSWORD": token})
    assert used.returncode == 0, used.stderr
    assert used.stdout.strip() == "42"


def test_default_writes_the_token_file_privately(
    gw: Gateway, provider: OidcProvider, tmp_path: Path
) -> None:
    done = login(gw, tmp_path, user=approve(provider))

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    token_file = tmp_path / "xdg" / "hoopd" / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert f"Wrote it to {token_file}" in done.stderr
    token = token_file.read_text().strip()
    assert token not in done.stderr
    assert_no_provider_token(provider, done.stderr, token_file.read_text())
    assert [p.name for p in token_file.parent.iterdir()] == ["token"]  # no temp file left

    used = psql_select(gw, {"PGPASSWORD": token})
    assert used.returncode == 0 and used.stdout.strip() == "42", used.stderr


def test_pgpass_line_lets_psql_in_without_a_password(
    gw: Gateway, provider: OidcProvider, tmp_path: Path
) -> None:
    pgpass = tmp_path / "pgpass"
    port = gw.ports["appdb"]
    others = ["# my databases", "db.example.com:5432:*:me:pa\\:ss", "*:*:*:*:catch-all"]
    pgpass.write_text("\n".join([f"127.0.0.1:{port}:appdb:*:stale-token", *others]) + "\n")
    pgpass.chmod(0o644)

    done = login(gw, tmp_path, "--pgpass", str(pgpass), "--connection", "appdb",
                 user=approve(provider))  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    first, *rest = pgpass.read_text().splitlines()
    assert rest == others  # the old line replaced, every other kept in order
    assert first.startswith(f"127.0.0.1:{port}:appdb:*:")
    token = first.split(":", 4)[4]
    assert claims(token)["sub"] == "alice" and token not in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and str(pgpass) in done.stderr
    assert_no_provider_token(provider, done.stderr, pgpass.read_text())

    used = psql_select(gw, {"PGPASSFILE": str(pgpass)})
    assert used.returncode == 0, used.stderr
    assert used.stdout.strip() == "42"


def test_kubeconfig_user_entry(gw: Gateway, provider: OidcProvider, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "hoopd-kube.yaml"

    done = login(gw, tmp_path, "--kubeconfig", str(kubeconfig), "--connection", "prod-k8s",
                 "--scope", "appdb:read", user=approve(provider))  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    document = yaml.safe_load(kubeconfig.read_text())
    assert document["kind"] == "Config"
    [entry] = document["users"]
    assert entry["name"] == "hoopd-prod-k8s"
    assert claims(entry["user"]["token"])["scope"] == "appdb:read"
    assert entry["user"]["token"] not in done.stderr
    assert_no_provider_token(provider, done.stderr, kubeconfig.read_text())


def test_kubeconfig_of_someone_else_is_not_overwritten(gw: Gateway, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")

    done = login(gw, tmp_path, "--kubeconfig", str(kubeconfig), "--connection", "k8s")

    assert done.returncode == 1
    assert "was not written by hoopd login" in done.stderr
    assert "enter the code" not in done.stderr  # refused before any sign-in
    assert kubeconfig.read_text() == "apiVersion: v1\nkind: Config\nclusters: []\n"


def test_denied_sign_in_fails_clearly(gw: Gateway, provider: OidcProvider, tmp_path: Path) -> None:
    done = login(gw, tmp_path, user=provider.deny_device)

    assert done.returncode == 1
    assert "hoopd login: the sign-in was denied at test-idp" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "xdg").exists()


def test_refused_exchange_names_the_oauth_error(
    gw: Gateway, provider: OidcProvider, tmp_path: Path
) -> None:
    done = login(gw, tmp_path, "--print", "--scope", "otherdb:read", user=approve(provider))

    assert done.returncode == 1
    assert "the gateway refused the token exchange (invalid_scope)" in done.stderr
    assert done.stdout == ""
    assert_no_provider_token(provider, done.stderr)


def test_unreachable_gateway(gw: Gateway, provider: OidcProvider, tmp_path: Path) -> None:
    with dead_port() as dead:
        done = login(gw, tmp_path, "--print", "--admin", f"http://127.0.0.1:{dead.port}",
                     user=approve(provider))  # fmt: skip

    assert done.returncode == 1
    assert f"cannot reach the gateway at http://127.0.0.1:{dead.port}/v1/token" in done.stderr
    assert done.stdout == ""
    assert_no_provider_token(provider, done.stderr)


def test_unreachable_provider(gw: Gateway, provider: OidcProvider, tmp_path: Path) -> None:
    config = tmp_path / "hoopd.toml"
    with dead_port() as dead:
        text = gw.config_path.read_text().replace(provider.issuer, f"http://127.0.0.1:{dead.port}")
        config.write_text(text)
        done = login(gw, tmp_path, "--print", config=config)

    assert done.returncode == 1
    assert "hoopd login: cannot sign in at test-idp: discovery request to" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connection", "appdb"], "--connection goes with --pgpass or --kubeconfig"),
        (["--pgpass", "/tmp/x"], "--pgpass needs --connection NAME"),
        (["--issuer", "nope"], "no issuer is named 'nope'; configured: test-idp"),
        (["--pgpass", "/tmp/x", "--connection", "nope"], "no connection is named 'nope'"),
        (["--admin", "http://192.0.2.1:8433"], "--admin must be https"),
        (["--print", "--pgpass", "/tmp/x"], "not allowed with argument"),
        (["--ttl", "0"], "must be a positive whole number"),
    ],
)
def test_bad_usage_exits_2_before_any_sign_in(
    gw: Gateway, tmp_path: Path, args: list[str], message: str
) -> None:
    done = login(gw, tmp_path, *args)

    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "enter the code" not in done.stderr


def test_pgpass_fields_are_escaped_as_libpq_reads_them() -> None:
    old = "# keep me\n\\:\\:1:6432:appdb:*:old-token\n::1:6432:appdb:bob:other\n"

    new = login_files.updated_pgpass(old, "::1", 6432, "appdb", "to:k\\en")

    assert new == ("\\:\\:1:6432:appdb:*:to\\:k\\\\en\n# keep me\n::1:6432:appdb:bob:other\n")
    assert login_files.pgpass_host("0.0.0.0") == "*"


def test_token_file_follows_xdg_only_when_absolute(tmp_path: Path) -> None:
    home = Path.home()
    xdg = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert login_files.default_token_file(xdg) == tmp_path / "hoopd" / "token"
    relative = {"XDG_CONFIG_HOME": "relative/dir"}
    assert login_files.default_token_file(relative) == home / ".config" / "hoopd" / "token"
