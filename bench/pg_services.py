"""The servers the PostgreSQL benchmark talks to, and how clients reach them.

Everything listens on 127.0.0.1 only, lives under one temporary directory, and is
stopped by the PID this module started. PostgreSQL and pgbouncer refuse to run as
root, so they run as the unprivileged ``hoopd.pgcluster.SERVICE_USER``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hoopd.pgcluster import SERVICE_USER, LocalCluster, free_port

DATABASE = "bench"
ROLE = "bench"
# All client legs connect with the same, plaintext, setting (see README).
CLIENT_SSLMODE = "disable"
UPSTREAM_PASSWORD_ENV = "BENCH_PG_PASSWORD"
READY_SECONDS = 30.0
TRIO_COPY_SCRIPT = Path(__file__).resolve().parent / "trio_copy_proxy.py"


class BenchSetupError(Exception):
    """A server could not be started or reached; the message says which and why."""


@dataclass(frozen=True)
class Leg:
    """One way for a client to reach the database, as the result rows name it.

    ``cpu_pid`` is the process whose CPU time is charged to the leg (None: not measured).
    """

    path: str
    label: str
    port: int
    password: str
    cpu_pid: int | None = None
    durability: str | None = None

    def client_env(self) -> dict[str, str]:
        """The environment for psql/pgbench on this leg (any inherited PG* is dropped)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.pop(UPSTREAM_PASSWORD_ENV, None)
        env.update(
            PGHOST="127.0.0.1",
            PGPORT=str(self.port),
            PGUSER=ROLE,
            PGDATABASE=DATABASE,
            PGPASSWORD=self.password,
            PGSSLMODE=CLIENT_SSLMODE,
            PGCONNECT_TIMEOUT="10",
            PGAPPNAME="hoopd-bench",
        )
        return env


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces; the fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _service_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _drop_privileges_prefix() -> list[str]:
    """setpriv execs its command, so the PID we hold is the server's own."""
    if os.geteuid() != 0:
        return []
    return [
        "setpriv",
        f"--reuid={SERVICE_USER}",
        f"--regid={SERVICE_USER}",
        "--init-groups",
        "--reset-env",
    ]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:]) or "(empty)"


def _stop_process(process: subprocess.Popen[bytes], sig: int, timeout: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


def _wait_for_ready(
    process: subprocess.Popen[bytes], what: str, out_path: Path, err_path: Path, seconds: float
) -> None:
    """Return once the process has printed a line ``ready``; raise (after stopping it)
    if it exits or stays silent for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError):
            if "ready" in out_path.read_text(errors="replace").splitlines():
                return
        if process.poll() is not None:
            raise BenchSetupError(
                f"{what} exited with status {process.returncode} before it was ready:\n"
                + _tail(err_path)
            )
        if time.monotonic() > deadline:
            _stop_process(process, signal.SIGTERM)
            raise BenchSetupError(
                f"{what} did not print 'ready' within {seconds:.0f} s:\n" + _tail(err_path)
            )
        time.sleep(0.05)


def smoke_query(leg: Leg, timeout: float = 30.0) -> str | None:
    """``SELECT 1`` through the leg with psql; None if it worked, else why not."""
    try:
        done = subprocess.run(
            ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", "select 1"],
            env=leg.client_env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"psql 'select 1' through {leg.label} did not finish within {timeout:.0f} s"
    if done.returncode != 0 or done.stdout.strip() != b"1":
        err = (done.stderr or done.stdout).decode(errors="replace").strip()
        return f"psql 'select 1' through {leg.label} failed: {err}"
    return None


# --- PostgreSQL ---------------------------------------------------------------------


def start_cluster(cluster: LocalCluster, log_file: Path) -> str:
    """Start a fresh cluster with role and database ``bench``; returns the role's password."""
    cluster.init()
    with open(cluster.datadir / "postgresql.conf", "a") as conf:
        # Room for the scale-10 pgbench tables, so no leg is measured against disk reads.
        conf.write("shared_buffers = '384MB'\n")
    cluster.start(log_file)
    password = secrets.token_urlsafe(18)
    cluster.psql(
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}';\n"
        f"CREATE DATABASE {DATABASE} OWNER {ROLE};\n"
    )
    return password


# --- pgbouncer ------------------------------------------------------------------------


class Pgbouncer:
    """pgbouncer in session mode in front of the cluster, authenticating with SCRAM."""

    def __init__(self, root: Path, pg_port: int, password: str) -> None:
        self.dir = root / "pgbouncer"
        self.port = free_port()
        self.pg_port = pg_port
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Leg:
        binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
        )
        if binary is None:
            raise BenchSetupError("pgbouncer is not installed (apt-get install pgbouncer)")
        self.dir.mkdir(mode=0o755)
        userlist = self.dir / "userlist.txt"
        userlist.write_text(f'"{ROLE}" "{self.password}"\n')
        userlist.chmod(0o600)
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            f"""[databases]
{DATABASE} = host=127.0.0.1 port={self.pg_port} dbname={DATABASE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {userlist}
pool_mode = session
max_client_conn = 200
default_pool_size = 40
log_connections = 0
log_disconnections = 0
logfile = {self.dir / "pgbouncer.log"}
pidfile = {self.dir / "pgbouncer.pid"}
"""
        )
        if os.geteuid() == 0:
            uid, gid = _service_ids()
            for path in (self.dir, userlist, ini):
                os.chown(path, uid, gid)
        log_path = self.dir / "stderr.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*_drop_privileges_prefix(), binary, str(ini)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        if not _wait_for_port(self.port, self.process, time.monotonic() + 15):
            self.stop()
            raise BenchSetupError(
                "pgbouncer did not start listening:\n"
                + _tail(log_path)
                + "\n"
                + _tail(self.dir / "pgbouncer.log")
            )
        return Leg("pgbouncer", "pgbouncer", self.port, self.password, self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process, signal.SIGTERM)


# --- trio-copy --------------------------------------------------------------------------


class TrioCopy:
    """bench/trio_copy_proxy.py in front of the cluster: bytes copied both ways, nothing
    else, so clients authenticate to PostgreSQL itself with its password."""

    def __init__(self, root: Path, pg_port: int, password: str) -> None:
        self.dir = root / "trio-copy"
        self.port = free_port()
        self.pg_port = pg_port
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Leg:
        self.dir.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        out_path, err_path = self.dir / "stdout.log", self.dir / "stderr.log"
        argv = [sys.executable, str(TRIO_COPY_SCRIPT), "--listen-port", str(self.port)]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.process = subprocess.Popen(
                [*argv, "--target-port", str(self.pg_port)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        _wait_for_ready(self.process, "trio-copy", out_path, err_path, READY_SECONDS)
        return Leg("trio-copy", "trio-copy", self.port, self.password, self.process.pid)

    def stderr_tail(self) -> str:
        return _tail(self.dir / "stderr.log")

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process, signal.SIGTERM)


# --- hoopd ----------------------------------------------------------------------------


class Hoopd:
    """``python -m hoopd serve`` with recording on, relaying to the cluster in plaintext;
    with ``policy_dir``, it is the ``hoopd-policy`` path, judging and masking by that
    directory's rules (``[policy] directory``)."""

    def __init__(
        self,
        root: Path,
        pg_port: int,
        password: str,
        durability: str,
        policy_dir: Path | None = None,
    ) -> None:
        self.path = "hoopd" if policy_dir is None else "hoopd-policy"
        self.dir = root / f"{self.path}-{durability}"
        self.port = free_port()
        self.pg_port = pg_port
        self.upstream_password = password
        self.durability = durability
        self.policy_dir = policy_dir
        self.token = secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.dir / "hoopd-data"

    def _write_config(self) -> Path:
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        config = self.dir / "hoopd.toml"
        policy = "" if self.policy_dir is None else f'\n[policy]\ndirectory = "{self.policy_dir}"\n'
        config.write_text(
            f"""[gateway]
data_dir = "{self.data_dir}"
log_level = "warning"

[client_tls]
allow_plaintext_on_loopback = true

[recording]
durability = "{self.durability}"
{policy}
[[tokens]]
identity = "bench"
sha256 = "{digest}"
expires = 2099-01-01T00:00:00Z

[[connections]]
name = "{DATABASE}"
protocol = "postgres"
listen = "127.0.0.1:{self.port}"

  [connections.target]
  host = "127.0.0.1"
  port = {self.pg_port}
  database = "{DATABASE}"
  user = "{ROLE}"
  secret = {{ env = "{UPSTREAM_PASSWORD_ENV}" }}
  tls = "disable"
"""
        )
        return config

    def start(self) -> Leg:
        self.dir.mkdir(mode=0o700)
        config = self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env[UPSTREAM_PASSWORD_ENV] = self.upstream_password  # this process only
        out_path, err_path = self.dir / "stdout.log", self.dir / "stderr.log"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hoopd", "serve", "--config", str(config)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        _wait_for_ready(self.process, "hoopd serve", out_path, err_path, READY_SECONDS)
        label = self.path
        if self.durability != "process-crash":
            label += f" ({self.durability})"
        return Leg(self.path, label, self.port, self.token, self.process.pid, self.durability)

    def stderr_tail(self) -> str:
        return _tail(self.dir / "stderr.log")

    def recorded_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process, signal.SIGTERM)
