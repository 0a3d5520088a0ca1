"""The gateway as a subprocess, configured for a test PostgreSQL server.

:class:`Gateway` writes a configuration file (free listen ports, token hashes,
target secrets passed through environment variables that only the gateway
process sees), starts ``python -m hoopd serve``, waits for its ``ready`` line,
keeps its stderr in a file, and stops it by PID. It also runs clients (psql,
pgbench, pg_dump, psycopg) against it and the recording commands
(``hoopd sessions``, ``hoopd replay``, ``hoopd audit verify``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from tests.support.pgserver import Completed, PgServer, clean_client_env
from tests.support.pgwire import open_session
from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 20.0
CLIENT_TIMEOUT_SECONDS = 120.0
CLIENT_USER = "anything"

EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class Token:
    """A static token: the client sends ``value``; the config holds its SHA-256."""

    identity: str
    groups: tuple[str, ...] = ()
    value: str = field(default_factory=lambda: "hoopd-test-token-" + secrets.token_hex(20))
    #: ``connection:action`` items; None leaves the token unrestricted.
    scope: tuple[str, ...] | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()


@dataclass
class Route:
    """One ``[[connections]]`` entry: a name clients select, a listener, a target."""

    name: str
    database: str = "app"
    user: str = "app"
    password: str | None = None  # None: the app user's password on the test server
    tls: str = "require"
    ca_file: Path | None = None
    server_name: str | None = None
    target_host: str = "127.0.0.1"
    target_port: int | None = None  # None: the test server's port
    listen_port: int = 0  # 0: pick a free port (or share_listener_with's)
    share_listener_with: str | None = None
    secret_in_file: bool = False


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def _toml_value(value: object) -> str:
    """A TOML value for text, a number, a boolean, a path, or a list or table of them."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _toml_str(str(value))
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_str(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


class Gateway:
    """One gateway process and its configuration."""

    def __init__(
        self,
        pg: PgServer,
        workdir: Path,
        *,
        routes: Sequence[Route] | None = None,
        tokens: Sequence[Token] | None = None,
        startup_timeout_seconds: float = 10.0,
        auth_failure_delay_seconds: float = 0.5,
        idle_timeout_seconds: float = 0.0,
        allow_plaintext_on_loopback: bool = False,
        client_cert_file: Path | None = None,
        client_key_file: Path | None = None,
        durability: str = "process-crash",
        log_level: str = "info",
        preexec_fn: Callable[[], Any] | None = None,
        policy_dir: Path | None = None,
        admin_port: int | None = None,
        approvals_store_dir: Path | None = None,
        webhook_url: str | None = None,
        identity_store_dir: Path | None = None,
        max_chain_depth: int | None = None,
        default_ttl_seconds: int | None = None,
        max_ttl_seconds: int | None = None,
        oidc_issuers: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.pg = pg
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = workdir / "data"
        self.config_path = workdir / "hoopd.toml"
        self.stderr_path = workdir / "gateway.stderr.log"
        self.routes = list(routes) if routes is not None else [Route("appdb")]
        self.tokens = list(tokens) if tokens is not None else [Token("alice", ("dba",))]
        self.token = self.tokens[0]
        self.startup_timeout_seconds = startup_timeout_seconds
        self.auth_failure_delay_seconds = auth_failure_delay_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.allow_plaintext_on_loopback = allow_plaintext_on_loopback
        self.client_cert_file = client_cert_file
        self.client_key_file = client_key_file
        self.durability = durability
        self.log_level = log_level
        self.preexec_fn = preexec_fn
        self.policy_dir = policy_dir
        self.admin_port = admin_port
        self.approvals_store_dir = approvals_store_dir
        self.webhook_url = webhook_url
        self.identity_store_dir = identity_store_dir
        self.max_chain_depth = max_chain_depth
        self.default_ttl_seconds = default_ttl_seconds
        self.max_ttl_seconds = max_ttl_seconds
        #: ``[[oidc.issuers]]`` entries, each a table of keys as docs/configuration.md
        #: names them (text, numbers, booleans, lists of text, and tables of those).
        self.oidc_issuers = [dict(issuer) for issuer in oidc_issuers]
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_lines: list[str] = []
        self._ready = threading.Event()
        self._pumps: list[threading.Thread] = []
        self._secret_env: dict[str, str] = {}
        self.ports: dict[str, int] = {}
        self._assign_ports()

    # ------------------------------------------------------------ configuration

    def _assign_ports(self) -> None:
        for route in self.routes:
            if route.share_listener_with is None:
                self.ports[route.name] = route.listen_port or free_port()
        for route in self.routes:
            if route.share_listener_with is not None:
                self.ports[route.name] = self.ports[route.share_listener_with]

    def secret_of(self, route: Route) -> str:
        return route.password if route.password is not None else self.pg.app_password

    def upstream_passwords(self) -> list[str]:
        return sorted({self.secret_of(r) for r in self.routes})

    def write_config(self) -> None:
        lines = [
            "[gateway]",
            f"data_dir = {_toml_str(str(self.data_dir))}",
            f"log_level = {_toml_str(self.log_level)}",
            f"startup_timeout_seconds = {float(self.startup_timeout_seconds)!r}",
            f"auth_failure_delay_seconds = {float(self.auth_failure_delay_seconds)!r}",
            f"idle_timeout_seconds = {float(self.idle_timeout_seconds)!r}",
            "",
            "[client_tls]",
            f"allow_plaintext_on_loopback = {str(self.allow_plaintext_on_loopback).lower()}",
        ]
        if self.client_cert_file is not None and self.client_key_file is not None:
            lines.append(f"cert_file = {_toml_str(str(self.client_cert_file))}")
            lines.append(f"key_file = {_toml_str(str(self.client_key_file))}")
        lines += ["", "[recording]", f"durability = {_toml_str(self.durability)}", ""]
        if self.policy_dir is not None:
            lines += ["[policy]", f"directory = {_toml_str(str(self.policy_dir))}", ""]
        if any(
            x is not None for x in (self.admin_port, self.approvals_store_dir, self.webhook_url)
        ):
            lines.append("[approvals]")
            if self.webhook_url is not None:
                lines.append(f"webhook_url = {_toml_str(self.webhook_url)}")
            if self.admin_port is not None:
                lines.append(f'admin_listen = "127.0.0.1:{self.admin_port}"')
            if self.approvals_store_dir is not None:
                lines.append(f"store_dir = {_toml_str(str(self.approvals_store_dir))}")
            lines.append("")
        lines += self._identity_lines()
        for token in self.tokens:
            lines += [
                "[[tokens]]",
                f"identity = {_toml_str(token.identity)}",
                "groups = [" + ", ".join(_toml_str(g) for g in token.groups) + "]",
                f"sha256 = {_toml_str(token.sha256)}",
                "expires = 2099-01-01T00:00:00Z",
                *(
                    []
                    if token.scope is None
                    else ["scope = [" + ", ".join(_toml_str(s) for s in token.scope) + "]"]
                ),
                "",
            ]
        self._secret_env = {}
        for index, route in enumerate(self.routes):
            secret = self.secret_of(route)
            if route.secret_in_file:
                secret_file = self.workdir / f"secret-{index}"
                secret_file.write_text(secret + "\n")
                secret_file.chmod(0o600)
                secret_ref = f"{{ file = {_toml_str(str(secret_file))} }}"
            else:
                env_name = f"HOOPD_TEST_SECRET_{index}"
                self._secret_env[env_name] = secret
                secret_ref = f"{{ env = {_toml_str(env_name)} }}"
            target_port = route.target_port if route.target_port is not None else self.pg.port
            lines += [
                "[[connections]]",
                f"name = {_toml_str(route.name)}",
                'protocol = "postgres"',
                f"listen = {_toml_str(f'127.0.0.1:{self.ports[route.name]}')}",
                "  [connections.target]",
                f"  host = {_toml_str(route.target_host)}",
                f"  port = {target_port}",
                f"  database = {_toml_str(route.database)}",
                f"  user = {_toml_str(route.user)}",
                f"  secret = {secret_ref}",
                f"  tls = {_toml_str(route.tls)}",
            ]
            if route.ca_file is not None:
                lines.append(f"  ca_file = {_toml_str(str(route.ca_file))}")
            if route.server_name is not None:
                lines.append(f"  server_name = {_toml_str(route.server_name)}")
            lines.append("")
        self.config_path.write_text("\n".join(lines))

    def _identity_lines(self) -> list[str]:
        """``[identity]`` and ``[[oidc.issuers]]``, when any of their options is set."""
        identity = {
            "store_dir": None if self.identity_store_dir is None else str(self.identity_store_dir),
            "max_chain_depth": self.max_chain_depth,
            "default_ttl_seconds": self.default_ttl_seconds,
            "max_ttl_seconds": self.max_ttl_seconds,
        }
        lines: list[str] = []
        if any(value is not None for value in identity.values()):
            lines.append("[identity]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in identity.items() if v is not None]
            lines.append("")
        for issuer in self.oidc_issuers:
            lines.append("[[oidc.issuers]]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in issuer.items()]
            lines.append("")
        return lines

    @property
    def admin_url(self) -> str:
        """The admin API's base URL (needs ``admin_port``)."""
        assert self.admin_port is not None, "this gateway has no admin API"
        return f"http://127.0.0.1:{self.admin_port}"

    # ---------------------------------------------------------------- lifecycle

    def gateway_env(self) -> dict[str, str]:
        env = clean_client_env(self._secret_env)
        env.pop("PGCONNECT_TIMEOUT", None)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self) -> None:
        """Start ``hoopd serve`` and wait for its ``ready`` line (bounded)."""
        assert self.proc is None, "gateway already running"
        self.write_config()
        self._ready.clear()
        self.stdout_lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hoopd", "serve", "--config", str(self.config_path)],
            cwd=REPO_ROOT,
            env=self.gateway_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=self.preexec_fn,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        stderr_file = open(self.stderr_path, "ab")  # noqa: SIM115 - closed by the pump
        self._pumps = [
            threading.Thread(target=self._pump_stdout, args=(self.proc.stdout,), daemon=True),
            threading.Thread(
                target=self._pump_stderr, args=(self.proc.stderr, stderr_file), daemon=True
            ),
        ]
        for pump in self._pumps:
            pump.start()
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._join_pumps()
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(
                    f"gateway exited with {code} before printing 'ready'; stderr:\n"
                    + self.stderr_text()[-6000:]
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"gateway did not print 'ready' within {READY_DEADLINE_SECONDS}s; stderr:\n"
                    + self.stderr_text()[-6000:]
                )

    def _pump_stdout(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.stdout_lines.append(line)
            if line.strip() == "ready":
                self._ready.set()
        stream.close()

    def _pump_stderr(self, stream: IO[bytes], sink: IO[bytes]) -> None:
        # A pipe, not a file handed to the child: resource limits set on the gateway
        # (RLIMIT_FSIZE) must apply to its recordings, not to our copy of its log.
        try:
            for raw in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
                sink.write(raw)
                sink.flush()
        finally:
            sink.close()
            stream.close()

    def _join_pumps(self) -> None:
        for pump in self._pumps:
            pump.join(timeout=10)
        self._pumps = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to the gateway's PID, then wait; SIGKILL and fail if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_DEADLINE_SECONDS)
                self._join_pumps()
                raise AssertionError(
                    f"gateway ignored SIGTERM for {STOP_DEADLINE_SECONDS}s; stderr:\n"
                    + self.stderr_text()[-4000:]
                ) from None
        self._join_pumps()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_DEADLINE_SECONDS)
        self._join_pumps()

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_stderr(self, text: str, *, timeout: float = 10.0) -> None:
        """Wait (polling, bounded) until the gateway's log contains ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway never logged {text!r}")
            time.sleep(0.1)

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------------ clients

    def conninfo(
        self,
        route: str = "appdb",
        *,
        sslmode: str = "require",
        dbname: str | None = None,
        user: str = CLIENT_USER,
        **extra: str,
    ) -> str:
        """A libpq connection string for ``route`` (no password: see :meth:`client_env`)."""
        parts = {
            "host": "127.0.0.1",
            "port": str(self.ports[route]),
            "dbname": dbname if dbname is not None else route,
            "user": user,
            "sslmode": sslmode,
            "connect_timeout": "10",
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def client_env(self, token: Token | str | None = None) -> dict[str, str]:
        """A client's environment: no PG* from our shell, PGPASSWORD set to the token."""
        value = self.token.value if token is None else token
        if isinstance(value, Token):
            value = value.value
        return clean_client_env({"PGPASSWORD": value})

    def run_client(
        self,
        argv: Sequence[str],
        *,
        token: Token | str | None = None,
        input: str | None = None,
        timeout: float = CLIENT_TIMEOUT_SECONDS,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Completed:
        full_env = self.client_env(token)
        if env:
            full_env.update(env)
        result = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd,
        )
        return Completed(result.returncode, result.stdout, result.stderr)

    def psql(
        self,
        *args: str,
        route: str = "appdb",
        token: Token | str | None = None,
        input: str | None = None,
        sslmode: str = "require",
        dbname: str | None = None,
        conn_extra: Mapping[str, str] | None = None,
        timeout: float = CLIENT_TIMEOUT_SECONDS,
        cwd: Path | None = None,
    ) -> Completed:
        """psql through the gateway (``-X``, ON_ERROR_STOP off unless args set it)."""
        info = self.conninfo(route, sslmode=sslmode, dbname=dbname, **dict(conn_extra or {}))
        return self.run_client(
            ["psql", "-X", "-d", info, *args],
            token=token,
            input=input,
            timeout=timeout,
            cwd=cwd,
        )

    def connect(
        self,
        route: str = "appdb",
        *,
        token: Token | str | None = None,
        autocommit: bool = True,
        sslmode: str = "require",
        **extra: Any,
    ) -> psycopg.Connection[Any]:
        """A psycopg connection through the gateway."""
        value = self.token.value if token is None else token
        if isinstance(value, Token):
            value = value.value
        return psycopg.connect(
            self.conninfo(route, sslmode=sslmode),
            password=value,
            autocommit=autocommit,
            **extra,
        )

    # ---------------------------------------------------------------- recording

    def cli(
        self, *args: str, timeout: float = 60.0, extra_env: Mapping[str, str] | None = None
    ) -> Completed:
        """``python -m hoopd ARGS`` (no target secrets in its environment)."""
        env = clean_client_env(dict(extra_env or {}))
        env["PYTHONPATH"] = str(REPO_ROOT)
        result = subprocess.run(
            [sys.executable, "-m", "hoopd", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Completed(result.returncode, result.stdout, result.stderr)

    def sessions(self) -> list[dict[str, Any]]:
        done = self.cli("sessions", "--data-dir", str(self.data_dir), "--json")
        assert done.returncode == 0, f"hoopd sessions failed: {done.stderr}"
        return parse_json_records(done.stdout)

    def replay(self, session_id: str) -> list[dict[str, Any]]:
        done = self.cli("replay", session_id, "--data-dir", str(self.data_dir), "--json")
        assert done.returncode == 0, f"hoopd replay {session_id} failed: {done.stderr}"
        return parse_json_records(done.stdout)

    # ------------------------------------------------------------ gateway tokens

    def exchange(self, token: Token | str, *args: str) -> Completed:
        """``hoopd token exchange --config ... ARGS`` with ``token`` in HOOPD_TOKEN."""
        value = token.value if isinstance(token, Token) else token
        return self.cli(
            "token", "exchange", "--config", str(self.config_path), *args,
            extra_env={"HOOPD_TOKEN": value},
        )  # fmt: skip

    def exchanged(self, token: Token | str, *args: str) -> str:
        """The token ``hoopd token exchange`` prints; fails the test if it refuses."""
        done = self.exchange(token, *args)
        assert done.returncode == 0, f"token exchange {args!r} failed: {done.stderr}"
        return done.stdout.strip()

    def curl(self, *args: str) -> tuple[int, Any]:
        """curl against the admin API (``args`` end with a path): status and JSON body."""
        *options, path = args
        done = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "-w", "\\n%{http_code}", *options,
             self.admin_url + path],
            capture_output=True, text=True, timeout=30, env=clean_client_env(),
        )  # fmt: skip
        assert done.returncode == 0, f"curl {args!r} failed: {done.stderr}"
        body, _, status = done.stdout.rpartition("\n")
        return int(status), json.loads(body) if body.strip() else None

    def exchange_over_http(self, subject_token: str, **params: str) -> tuple[int, Any]:
        """``POST /v1/token`` (RFC 8693) with curl: status and JSON body."""
        form = {
            "grant_type": EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            **params,
        }
        args: list[str] = ["-X", "POST"]
        for name, value in form.items():
            args += ["--data-urlencode", f"{name}={value}"]
        return self.curl(*args, "/v1/token")

    def login_error(self, token: Token | str, route: str = "appdb") -> dict[str, str] | None:
        """The error fields the gateway answers a login with ``token`` (None: logged in),
        seen on the wire (libpq does not show a login failure's SQLSTATE)."""
        value = token.value if isinstance(token, Token) else token
        conn, error = open_session("127.0.0.1", self.ports[route], dbname=route, password=value)
        conn.close()
        return error

    def audit_verify(self) -> Completed:
        return self.cli("audit", "verify", "--data-dir", str(self.data_dir))

    def data_files(self) -> Iterator[Path]:
        """Every regular file under data_dir."""
        for dirpath, _dirnames, filenames in os.walk(self.data_dir):
            for name in filenames:
                path = Path(dirpath) / name
                if path.is_file():
                    yield path


def parse_json_records(text: str) -> list[dict[str, Any]]:
    """JSON lines, or a single JSON array / object."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        data = json.loads(stripped)
        assert isinstance(data, list)
        return [dict(item) for item in data]
    records: list[dict[str, Any]] = []
    for line in stripped.splitlines():
        if line.strip():
            item = json.loads(line)
            assert isinstance(item, dict), f"not a JSON object: {line!r}"
            records.append(item)
    return records


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWT, read without checking anything."""
    segment = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(claims, dict), claims
    return claims


def gateway_token_id(token: str) -> str:
    """The id a gateway token is known by (``hoopd revoke`` takes it): ``gt:`` + jti."""
    return "gt:" + str(jwt_claims(token)["jti"])


def session_id_of(session: Mapping[str, Any]) -> str:
    for key in ("id", "session_id", "session"):
        value = session.get(key)
        if isinstance(value, str | int):
            return str(value)
    raise AssertionError(f"session record without an id: {session!r}")


@contextmanager
def running_gateway(pg: PgServer, workdir: Path, **options: Any) -> Iterator[Gateway]:
    """A started gateway, stopped (SIGTERM) on exit."""
    gateway = Gateway(pg, workdir, **options)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def unique_marker(prefix: str = "m") -> str:
    """A string that appears nowhere else: tag a statement, find it on the target."""
    return f"{prefix}_{secrets.token_hex(6)}"


def session_ids(gateway: Gateway) -> set[str]:
    return {session_id_of(s) for s in gateway.sessions()}


def wait_for_new_session(
    gateway: Gateway, before: set[str], *, timeout: float = 10.0
) -> dict[str, Any]:
    """The one session listed by ``hoopd sessions`` that is not in ``before`` (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        fresh = [s for s in gateway.sessions() if session_id_of(s) not in before]
        if len(fresh) == 1:
            return fresh[0]
        assert len(fresh) < 2, f"expected one new session, got {fresh!r}"
        if time.monotonic() > deadline:
            raise AssertionError("no new session appeared in `hoopd sessions`")
        time.sleep(0.1)
