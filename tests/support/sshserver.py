"""A real OpenSSH server (``/usr/sbin/sshd``) for integration tests.

:class:`SshServer` runs ``sshd -D -e -f <its own config>`` as root, listening on
127.0.0.1 and a free port only, with its own ed25519 host key. The PID we hold is
the listener's own; :meth:`SshServer.stop` ends it and every process it forked
(the per-connection sshd children and the sessions under them), each by PID.

Logins go to one Unix user, :data:`TARGET_USER` (created with a home directory
when missing). Each server generates its own client key pair and authorizes it
for that user in a per-server ``AuthorizedKeysFile``; the private key is what a
gateway would hold as its upstream credential.

The target user's password is random, generated once per machine and kept in a
root-only file (:data:`SECRET_DIR`), so test sessions that run at the same time
agree on it; it is always set, which also keeps the account unlocked (with
``UsePAM no`` sshd refuses every method, keys included, for a locked account).
Only a server started with ``password_auth=True`` accepts it.

sshd logs to stderr (``-e``), which goes to a file the tests read to show what
the target saw.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.logwatch import WatchedLog
from tests.support.ports import free_port

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
TARGET_USER = "hoopd-target"
SECRET_DIR = Path("/var/lib/hoopd-tests")
PRIVSEP_DIR = Path("/run/sshd")
STARTUP_DEADLINE_SECONDS = 20.0
STOP_DEADLINE_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0


# ------------------------------------------------------------------- target user


def ensure_target_user(name: str = TARGET_USER) -> pwd.struct_passwd:
    """The Unix user logins go to (bash, home directory); created when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name],
            check=False,  # a concurrent session may have created it meanwhile
            capture_output=True,
            timeout=30,
        )
        return pwd.getpwnam(name)


def target_password(name: str = TARGET_USER) -> str:
    """The user's password: generated once per machine, kept root-only, set every call.

    Setting it is idempotent and serialised by a lock, so concurrent test sessions
    never overwrite each other's password. The value is never logged or printed.
    """
    SECRET_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    SECRET_DIR.chmod(0o700)
    path = SECRET_DIR / f"{name}.password"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as secret:
        fcntl.flock(secret, fcntl.LOCK_EX)
        password = secret.read().strip()
        if not password:
            password = "pw-" + secrets.token_urlsafe(24)
            secret.seek(0)
            secret.write(password + "\n")
            secret.flush()
        done = subprocess.run(
            ["chpasswd"],
            input=f"{name}:{password}\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"chpasswd for {name} failed ({done.returncode})")
    return password


def _sshd_version() -> tuple[int, int]:
    out = subprocess.run([str(SSHD), "-V"], capture_output=True, text=True, timeout=10)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    if found is None:
        raise RuntimeError("cannot tell the OpenSSH version of " + str(SSHD))
    return int(found.group(1)), int(found.group(2))


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from ``/proc``), children before grandchildren."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name, which may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    queue = [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found.extend(children)
        queue.extend(children)
    return found


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class SshServer(WatchedLog):
    """One running sshd on 127.0.0.1, its keys, its log, and its target user.

    Guaranteed once :meth:`start` returns: sshd answers with an ``SSH-2.0-`` banner
    on ``host:port``; ``client_key`` logs in as ``user``; ``host_key`` is the
    key sshd presents (so ``known_hosts_line`` makes a client accept it).
    """

    log_name = "sshd log"

    def __init__(
        self,
        workdir: Path,
        *,
        password_auth: bool = False,
        user: str = TARGET_USER,
        log_level: str = "VERBOSE",
        extra_config: Sequence[str] = (),
    ) -> None:
        self.dir = workdir
        self.host = "127.0.0.1"
        self.port = 0
        self.user = user
        self.password_auth = password_auth
        self.log_level = log_level
        self.extra_config = list(extra_config)
        self.config_path = workdir / "sshd_config"
        self.logfile = workdir / "sshd.log"
        self.pidfile = workdir / "sshd.pid"
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        #: Where ``AuthorizedKeysFile`` points: a directory of its own under the system
        #: temp dir, since sshd reads it as the target user, who cannot traverse a
        #: private workdir (pytest's are 0700). Made by :meth:`start`, removed by :meth:`stop`.
        self.authorized_dir = Path("/nonexistent")
        #: Where the target's sftp-server logs each operation (in ``authorized_dir``,
        #: written by the target user). Made by :meth:`start`.
        self.sftp_log = Path("/nonexistent")
        #: The private key that logs in as ``user`` (ed25519, no passphrase, 0600).
        self.client_key = workdir / "client_ed25519"
        self.client_public_key = ""
        #: ``ssh-ed25519 AAAA...``: the host key, without a comment.
        self.host_key = ""
        #: ``SHA256:...``: the host key's fingerprint, as ssh prints it.
        self.host_key_fingerprint = ""
        self._password: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ details

    @property
    def password(self) -> str:
        """The target user's password; only a server with ``password_auth`` has one."""
        if self._password is None:
            raise AssertionError("this sshd was started without password authentication")
        return self._password

    @property
    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...``, for a client's known_hosts file."""
        return f"[{self.host}]:{self.port} {self.host_key}"

    @property
    def target(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.user)

    @property
    def home(self) -> Path:
        """The target user's home directory."""
        return Path(self.target.pw_dir)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Generate keys, write the config, start sshd and wait until it answers."""
        assert self.proc is None, "sshd already running"
        self.dir.mkdir(parents=True, exist_ok=True)
        ensure_target_user(self.user)
        password = target_password(self.user)
        self._password = password if self.password_auth else None
        self._make_keys()
        self._make_sftp_log()
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.port = free_port()
        self._write_config()
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t rejected the configuration:\n{check.stderr}")
        log = open(self.logfile, "ab")  # noqa: SIM115 - sshd keeps it
        try:
            self.proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready()

    def _keygen(self, path: Path, comment: str) -> str:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        path.chmod(0o600)
        public = path.with_name(path.name + ".pub").read_text().split()
        return f"{public[0]} {public[1]}"

    def _make_keys(self) -> None:
        self.host_key = self._keygen(self.host_key_path, "hoopd-test-host")
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key_path) + ".pub"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.host_key_fingerprint = listed.stdout.split()[1]
        self.client_public_key = self._keygen(self.client_key, "hoopd-test-client")
        self.authorized_dir = Path(tempfile.mkdtemp(prefix="hoopd-sshd-keys-"))
        self.authorized_dir.chmod(0o755)
        self.authorize_key(self.client_public_key)

    def _make_sftp_log(self) -> None:
        self.sftp_log = self.authorized_dir / "sftp.log"
        self.sftp_log.touch(mode=0o644)
        shutil.chown(self.sftp_log, user=self.user)

    def sftp_log_mark(self) -> int:
        """Where :attr:`sftp_log` ends now, for :meth:`sftp_operations`."""
        return self.sftp_log.stat().st_size

    def sftp_operations(self, since: int = 0) -> list[str]:
        """The lines sftp-server logged since ``since``: one per operation that
        reached the target (``open "PATH" flags READ ...``, ``opendir "PATH"``, ...)."""
        with open(self.sftp_log, "rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace").splitlines()

    def authorize_key(self, public_key_line: str) -> None:
        """Let another public key (``ssh-ed25519 AAAA...``) log in as ``user``."""
        path = self.authorized_dir / self.user
        with open(path, "a") as keys:
            keys.write(public_key_line.strip() + "\n")
        path.chmod(0o644)

    def _write_config(self) -> None:
        yes_no = "yes" if self.password_auth else "no"
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            "AddressFamily inet",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pidfile}",
            f"AuthorizedKeysFile {self.authorized_dir}/%u",
            "StrictModes no",
            "UsePAM no",
            "PermitRootLogin no",
            "PubkeyAuthentication yes",
            f"PasswordAuthentication {yes_no}",
            f"KbdInteractiveAuthentication {yes_no}",
            "PermitEmptyPasswords no",
            # Each SFTP operation is logged (see sftp_log), so tests can see what
            # reached the target; sshd runs the subsystem through the login shell.
            f"Subsystem sftp {SFTP_SERVER} -e -l INFO 2>>{self.sftp_log}",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "LoginGraceTime 30",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "AllowTcpForwarding yes",  # -L, -W and -R through the gateway
            "AllowAgentForwarding yes",
            # Only a client that asks for X11 gets it (through the gateway: only when a
            # policy allows it); sshd runs xauth for it and listens on 127.0.0.1 only.
            "X11Forwarding yes",
            "X11UseLocalhost yes",
            "PermitUserEnvironment no",
            # The locale, as stock sshd; HOOPD_TEST_* lets tests show the gateway
            # itself keeps other variables back.
            "AcceptEnv LANG LC_* HOOPD_TEST_*",
            f"LogLevel {self.log_level}",
        ]
        if _sshd_version() >= (9, 8):
            # Tests fail logins on purpose; newer sshd would then refuse 127.0.0.1.
            lines.append("PerSourcePenalties no")
        lines.extend(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"sshd exited with {code} during startup:\n" + self.log_text())
            if self._banner_seen():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sshd did not answer in time:\n" + self.log_text())
            time.sleep(0.05)

    def _banner_seen(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the listener and everything it forked (by PID), SIGKILL what lingers.

        Also removes the authorized-keys directory; the workdir is left alone.
        """
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                self._end(proc)
        finally:
            if self.authorized_dir.name.startswith("hoopd-sshd-keys-"):
                shutil.rmtree(self.authorized_dir, ignore_errors=True)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        below = _descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _signal_all(below, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_DEADLINE_SECONDS)
        deadline = time.monotonic() + STOP_DEADLINE_SECONDS
        while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_all([pid for pid in below if _alive(pid)], signal.SIGKILL)

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- target side

    def run_as_target(
        self,
        command: str,
        *,
        input: bytes | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a shell command as the target user in its home, not through sshd.

        The environment is reset (``setpriv --reset-env``: HOME, USER, SHELL, PATH).
        With ``check``, a non-zero exit raises AssertionError carrying stderr.
        """
        done = subprocess.run(
            [
                "setpriv",
                f"--reuid={self.user}",
                f"--regid={self.user}",
                "--init-groups",
                "--reset-env",
                "/bin/sh",
                "-c",
                command,
            ],
            cwd=self.home,
            input=input,
            capture_output=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"as {self.user}: {command!r} exited {done.returncode}:\n"
                + done.stderr.decode(errors="replace")
            )
        return done

    def target_path(self, relative: str) -> Path:
        """A path under the target's home (``relative`` must stay inside it)."""
        path = (self.home / relative).resolve()
        if not path.is_relative_to(self.home.resolve()):
            raise ValueError(f"{relative!r} leaves the target's home")
        return path

    def read_target_file(self, relative: str) -> bytes:
        """The bytes of a file under the target's home, read directly (as root)."""
        return self.target_path(relative).read_bytes()

    def write_target_file(self, relative: str, data: bytes, mode: int = 0o644) -> Path:
        """Write a file under the target's home, owned by the target user."""
        path = self.target_path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        os.chown(path, self.target.pw_uid, self.target.pw_gid)
        return path

    def remove_target_path(self, relative: str) -> None:
        """Delete a file or tree under the target's home (missing is fine)."""
        path = self.target_path(relative)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def make_workdir(prefix: str = "hoopd-sshd-") -> Path:
    """A fresh temporary directory (0700) for one server; remove it with shutil.rmtree."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextmanager
def running_sshd(
    workdir: Path | None = None,
    *,
    password_auth: bool = False,
    user: str = TARGET_USER,
    extra_config: Sequence[str] = (),
) -> Iterator[SshServer]:
    """A started :class:`SshServer`, stopped on exit.

    Without ``workdir`` a temporary directory is made and removed afterwards;
    a given ``workdir`` is left in place (sshd's log stays readable there).
    """
    owned = workdir is None
    directory = make_workdir() if workdir is None else workdir
    server = SshServer(directory, password_auth=password_auth, user=user, extra_config=extra_config)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
