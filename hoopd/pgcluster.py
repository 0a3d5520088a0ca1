"""A throwaway local PostgreSQL cluster, for ``hoopd demo`` and the benchmarks.

It runs as an unprivileged system user when started by root (PostgreSQL refuses
to run as root), listens on 127.0.0.1 only, and is stopped by its PID.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_USER = "hoopd-demo"


class ClusterError(Exception):
    """The cluster could not be set up; the message says what to install or fix."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL server binaries (Debian layout, then PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ClusterError("PostgreSQL server binaries not found (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as_prefix() -> list[str]:
    """Command prefix that drops root to the service user (exec, so PIDs stay ours)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
    return [
        "setpriv",
        f"--reuid={SERVICE_USER}",
        f"--regid={SERVICE_USER}",
        "--init-groups",
        "--reset-env",
    ]


@dataclass
class LocalCluster:
    """A PostgreSQL data directory under ``root`` and, once started, its server."""

    root: Path
    port: int = field(default_factory=free_port)
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVICE_USER)
            shutil.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        bindir = find_bindir()
        prefix = _run_as_prefix()
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        for path in (self.root, self.socket_dir):
            path.chmod(0o755)
            self._chown(path)
        pwfile = self.root / "superuser.pw"
        pwfile.write_text(self.superuser_password)
        pwfile.chmod(0o600)
        self._chown(pwfile)
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        pwfile.unlink()
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )

    def start(self, log_file: Path) -> None:
        bindir = find_bindir()
        log = open(log_file, "ab")  # noqa: SIM115 - the server owns it while it runs
        self.process = subprocess.Popen(
            [*_run_as_prefix(), str(bindir / "postgres"), "-D", str(self.datadir)],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [
                    str(bindir / "pg_isready"),
                    "-q",
                    "-h",
                    str(self.socket_dir),
                    "-p",
                    str(self.port),
                ],
                check=False,
            )
            if ready.returncode == 0:
                return
            if self.process.poll() is not None:
                raise ClusterError(f"PostgreSQL exited during start; see {log_file}")
            time.sleep(0.1)
        raise ClusterError(f"PostgreSQL did not become ready; see {log_file}")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the local socket; returns psql's output."""
        result = subprocess.run(
            [
                str(find_bindir() / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
            ],
            input=sql.encode(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(result.stderr.decode(errors="replace").strip())
        return result.stdout.decode()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(2)  # SIGINT: fast shutdown
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
