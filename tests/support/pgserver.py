"""A real PostgreSQL 15 server for integration tests.

PostgreSQL refuses to run as root, so the server runs as an unprivileged OS user
(``hoopdtest``, created when missing) through ``setpriv``, which execs: the PID
we hold is the postmaster's own, and SIGINT to it is a fast shutdown.

``initdb`` is slow enough to matter, so it runs once per test session into a
template; every server instance starts from a copy of that data directory.

Each server listens on 127.0.0.1 only (TLS on, certificates from a throwaway
``trustme`` CA) and on a private unix socket directory where the superuser
``postgres`` is trusted. Its log (every statement, every connection) goes to a
file the tests read to show what actually arrived at the target.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.support.logwatch import WatchedLog
from tests.support.ports import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_OS_USER = "hoopdtest"
STARTUP_DEADLINE_SECONDS = 30.0
CLIENT_TIMEOUT_SECONDS = 60.0

# The users the sample server has; passwords are generated per test session.
APP_USER = "app"
APP_DATABASE = "app"
MD5_USER = "md5user"
CLEARTEXT_USER = "pwuser"

# libpq reads these from the environment; a client we start must see only what
# the test gives it, never something inherited from the shell running pytest.
_LIBPQ_ENV_PREFIXES = ("PG",)


def clean_client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a client subprocess: ours minus every ``PG*`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LIBPQ_ENV_PREFIXES)}
    env["PGCONNECT_TIMEOUT"] = "10"
    if extra:
        env.update(extra)
    return env


def ensure_server_os_user() -> pwd.struct_passwd:
    """The unprivileged OS user PostgreSQL runs as; created when missing."""
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", SERVER_OS_USER],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return pwd.getpwnam(SERVER_OS_USER)


def as_server_user(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the server's OS user (setpriv execs, so the PID stays the same)."""
    return [
        "setpriv",
        f"--reuid={SERVER_OS_USER}",
        f"--regid={SERVER_OS_USER}",
        "--init-groups",
        "--reset-env",
        *argv,
    ]


def chown_tree(path: Path, owner: pwd.struct_passwd) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, owner.pw_uid, owner.pw_gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)


def make_shared_tempdir(prefix: str) -> Path:
    """A temporary directory the server's OS user can traverse (mkdtemp makes 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class PgTemplate:
    """A freshly initialised data directory, copied for every server instance."""

    datadir: Path
    superuser_password: str


def init_template(root: Path) -> PgTemplate:
    """Run initdb once (as the server's OS user) into ``root/template``."""
    owner = ensure_server_os_user()
    base = root / "template"
    base.mkdir()
    password = secrets.token_urlsafe(18)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    datadir = base / "data"
    chown_tree(base, owner)
    pwfile.chmod(0o600)
    result = subprocess.run(
        as_server_user(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    pwfile.unlink()
    return PgTemplate(datadir=datadir, superuser_password=password)


class Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.crt"
        self.cert_file = directory / "server.crt"
        self.key_file = directory / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        cert.private_key_pem.write_to_path(str(self.key_file))
        self.ca_file.chmod(0o644)
        self.cert_file.chmod(0o644)
        self.key_file.chmod(0o600)


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


class PgServer(WatchedLog):
    """One running PostgreSQL instance, started from a copy of the template."""

    def __init__(self, template: PgTemplate, root: Path, name: str = "pg") -> None:
        self.template = template
        self.owner = ensure_server_os_user()
        self.dir = root / name
        self.datadir = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.logfile = self.dir / "server.log"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.superuser_password = template.superuser_password
        self.app_password = "app-" + secrets.token_urlsafe(24)
        self.md5_password = "md5-" + secrets.token_urlsafe(24)
        self.cleartext_password = "pw-" + secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls: Tls | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o755)
        subprocess.run(
            ["cp", "-a", str(self.template.datadir), str(self.datadir)],
            check=True,
            timeout=120,
        )
        self.sockdir.mkdir()
        self.tls = Tls(self.dir / "tls")
        os.chown(self.sockdir, self.owner.pw_uid, self.owner.pw_gid)
        os.chown(self.tls.key_file, self.owner.pw_uid, self.owner.pw_gid)
        self._write_config()
        log = open(self.logfile, "ab")  # noqa: SIM115 - the server keeps it
        try:
            self.proc = subprocess.Popen(
                as_server_user([str(PG_BIN / "postgres"), "-D", str(self.datadir)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        self._wait_ready()

    def _write_config(self) -> None:
        assert self.tls is not None
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "ssl": "on",
            "ssl_cert_file": f"'{self.tls.cert_file}'",
            "ssl_key_file": f"'{self.tls.key_file}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Less WAL on disk: quicker to write, and to delete after the session.
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "min_wal_size": "'32MB'",
            "max_wal_size": "'64MB'",
            "shared_buffers": "'32MB'",
            "max_connections": "60",
            "log_destination": "'stderr'",
            "logging_collector": "off",
            "log_statement": "'all'",
            "log_connections": "on",
            "log_line_prefix": "'%m [%p] %u@%d '",
            "log_min_error_statement": "'error'",
            "lc_messages": "'C'",
        }
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# integration test settings\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        hba = "\n".join(
            [
                "# TYPE    DATABASE USER       ADDRESS       METHOD",
                "local     all      all                      trust",
                f"host      all      {MD5_USER}    127.0.0.1/32  md5",
                f"host      all      {CLEARTEXT_USER}     127.0.0.1/32  password",
                "hostssl   all      all        127.0.0.1/32  scram-sha-256",
                "hostnossl all      all        127.0.0.1/32  scram-sha-256",
                "",
            ]
        )
        (self.datadir / "pg_hba.conf").write_text(hba)
        chown_tree(self.datadir, self.owner)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.proc.returncode} during startup:\n"
                    + self.log_text()
                )
            ready = subprocess.run(
                [
                    str(PG_BIN / "pg_isready"),
                    "-q",
                    "-h",
                    str(self.sockdir),
                    "-p",
                    str(self.port),
                ],
                env=clean_client_env(),
                timeout=10,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not become ready in time:\n" + self.log_text())
            time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)

    # ------------------------------------------------------------- sample data

    def create_sample_roles_and_schema(self) -> None:
        """Users ``app`` (SCRAM, owns database ``app``), ``md5user``, ``pwuser``;
        table ``customers`` holding personal data, owned by ``app``."""
        self.superuser_sql(
            f"""
            set log_statement = 'none';  -- keep the passwords out of the server log
            create role {APP_USER} login password '{self.app_password}';
            create database {APP_DATABASE} owner {APP_USER};
            set password_encryption = 'md5';
            create role {MD5_USER} login password '{self.md5_password}';
            reset password_encryption;
            create role {CLEARTEXT_USER} login password '{self.cleartext_password}';
            """,
            dbname="postgres",
        )
        self.superuser_sql(
            f"""
            set role {APP_USER};
            create table customers (
                id          integer generated always as identity primary key,
                full_name   text not null,
                email       text not null unique,
                phone       text,
                national_id text,
                birth_date  date,
                iban        text,
                created_at  timestamptz not null default '2024-01-01 00:00:00+00'
            );
            insert into customers (full_name, email, phone, national_id, birth_date, iban)
            select 'Customer ' || g,
                   'customer' || g || '@example.test',
                   '+1-555-' || lpad(g::text, 4, '0'),
                   lpad((g * 7919)::text, 9, '0'),
                   date '1970-01-01' + g * 97,
                   'DE' || lpad((g * 104729)::text, 20, '0')
              from generate_series(1, 50) g;
            create table audit_marks (
                id     bigint generated always as identity primary key,
                marker text not null,
                note   text
            );
            grant select on customers to {MD5_USER}, {CLEARTEXT_USER};
            reset role;
            """,
            dbname=APP_DATABASE,
        )

    # ----------------------------------------------------------------- helpers

    def superuser_psql(
        self,
        args: Sequence[str],
        *,
        dbname: str = APP_DATABASE,
        input: str | None = None,
        check: bool = True,
        timeout: float = CLIENT_TIMEOUT_SECONDS,
    ) -> Completed:
        """Run psql as superuser ``postgres`` over the unix socket (trusted)."""
        argv = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.sockdir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            dbname,
            *args,
        ]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=clean_client_env(),
            timeout=timeout,
        )
        done = Completed(result.returncode, result.stdout, result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(
                f"superuser psql failed ({result.returncode}): {args!r}\n{result.stderr}"
            )
        return done

    def superuser_sql(self, sql: str, *, dbname: str = APP_DATABASE) -> str:
        """Run SQL as superuser; return unaligned, tuples-only output (``|``-separated)."""
        return self.superuser_psql(["-At", "-f", "-"], dbname=dbname, input=sql).stdout

    def scalar(self, sql: str, *, dbname: str = APP_DATABASE) -> str:
        return self.superuser_sql(sql, dbname=dbname).strip()

    def audit_marks(self, marker: str) -> int:
        """How many rows of the sample table ``audit_marks`` hold ``marker``: what a
        statement that was let through wrote on the target."""
        return int(self.scalar(f"select count(*) from audit_marks where marker = '{marker}'"))

    def table_digest(self, table: str, *, dbname: str = APP_DATABASE) -> tuple[int, str]:
        """Row count and an order-independent md5 of a table's full contents."""
        out = self.scalar(
            f"select count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' "
            f"order by t::text)), '') from {table} t",
            dbname=dbname,
        )
        count, _, digest = out.partition(" ")
        return int(count), digest

    def dsn(self, user: str, password: str, *, dbname: str = APP_DATABASE) -> str:
        """A libpq connection string straight to the server over TCP (TLS)."""
        return (
            f"host={self.host} port={self.port} dbname={dbname} user={user} "
            f"password={password} sslmode=require"
        )

    def active_backends(self, marker: str) -> list[int]:
        """PIDs of backends currently running a query that contains ``marker``."""
        out = self.scalar(
            "select string_agg(pid::text, ' ') from pg_stat_activity "
            f"where state = 'active' and pid <> pg_backend_pid() and query like '%{marker}%'"
        )
        return [int(pid) for pid in out.split()]

    def cancel_backends(self, marker: str) -> None:
        """Cancel, as superuser, every query containing ``marker`` (cleanup after failures)."""
        self.superuser_sql(
            "select pg_cancel_backend(pid) from pg_stat_activity "
            f"where pid <> pg_backend_pid() and query like '%{marker}%'"
        )

    def wait_until_active(self, marker: str, *, count: int = 1, timeout: float = 10.0) -> list[int]:
        """Poll pg_stat_activity until ``count`` backends run a query containing ``marker``."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.active_backends(marker)
            if len(pids) >= count:
                return pids
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{count} backend(s) running {marker!r} never showed up (saw {pids})"
                )
            time.sleep(0.05)

    def log_bytes(self) -> bytes:
        return self.logfile.read_bytes()

    def statements_logged(self, *, since: int = 0, user: str = APP_USER) -> list[str]:
        """Statement texts the server logged for ``user`` (simple and extended protocol)."""
        pattern = re.compile(
            rf"^\S+ \S+ \S+ \[\d+\] {re.escape(user)}@\S* LOG:  "
            r"(?:statement|execute [^:]*): (.*)$",
            re.M,
        )
        return pattern.findall(self.log_text(since))


@contextmanager
def running_server(template: PgTemplate, root: Path, name: str = "pg") -> Iterator[PgServer]:
    server = PgServer(template, root, name)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
