"""The real OpenSSH clients, run non-interactively against any SSH server.

:class:`SshClient` runs ``ssh``, ``scp`` (sftp-based default and legacy ``-O``),
``sftp -b``, ``rsync -e ssh``, ``git`` over ssh and ``ssh -L`` with the same
options every time:

- ``-F /dev/null`` and a private ``HOME``, so no user or system client
  configuration, agent or default key leaks in;
- a known_hosts file of the client's own, pre-filled with the lines it was given,
  and ``StrictHostKeyChecking=yes`` (or ``accept-new`` for first-use tests);
- a password (a gateway token, say) answered through ``SSH_ASKPASS``: a 0700
  script that prints it from an environment variable only the client process
  sees (never a command line), with ``SSH_ASKPASS_REQUIRE=force``. The script
  answers ``no`` to a yes/no question, so a host key prompt never gets the password;
- or a private key (``IdentitiesOnly``), or both;
- a connect timeout, and a deadline on every process.

:class:`TmuxSession` drives an interactive client in a detached tmux session on
a tmux server of its own (its own socket, no configuration file).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from tests.support.ports import free_port

CLIENT_TIMEOUT_SECONDS = 60.0
FORWARD_DEADLINE_SECONDS = 15.0
PASSWORD_ENV = "HOOPD_TEST_SSH_SECRET"

_ASKPASS_SCRIPT = f"""#!/bin/sh
case "$1" in
  *"(yes/no"*) echo no ;;
  *) printf '%s\\n' "${PASSWORD_ENV}" ;;
esac
"""


@dataclass(frozen=True)
class SshResult:
    """What a client process did: its exit status and everything it wrote."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self) -> str:
        """stderr as text (UTF-8, undecodable bytes replaced)."""
        return self.stderr.decode("utf-8", errors="replace")

    def check(self) -> SshResult:
        """This result if the exit status is 0; otherwise AssertionError with stderr."""
        if self.returncode != 0:
            raise AssertionError(
                f"{self.argv[0]} exited {self.returncode}: {shlex.join(self.argv[1:])[:300]}\n"
                f"stderr:\n{self.err[-3000:]}"
            )
        return self


class SshClient:
    """One user's view of one SSH server (``host:port``) through the real clients.

    ``workdir`` holds the client's known_hosts, askpass script, private HOME and
    scratch files; the caller owns it (and removes it). Nothing the client writes
    goes anywhere else.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        workdir: Path,
        *,
        password: str | None = None,
        identity_file: Path | None = None,
        known_hosts: Sequence[str] = (),
        strict_host_key_checking: Literal["yes", "accept-new"] = "yes",
        connect_timeout: int = 10,
        timeout: float = CLIENT_TIMEOUT_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.dir = workdir
        self.password = password
        self.identity_file = identity_file
        self.strict_host_key_checking = strict_host_key_checking
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        workdir.mkdir(parents=True, exist_ok=True)
        self.home = workdir / "home"
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.known_hosts_file = workdir / "known_hosts"
        self.set_known_hosts(known_hosts)
        self.askpass = workdir / "askpass.sh"
        self.askpass.write_text(_ASKPASS_SCRIPT)
        self.askpass.chmod(0o700)

    # ------------------------------------------------------------------ options

    def set_known_hosts(self, lines: Sequence[str]) -> None:
        """Replace the known_hosts file with exactly these lines."""
        self.known_hosts_file.write_text("".join(line.strip() + "\n" for line in lines))

    def known_hosts_text(self) -> str:
        """The known_hosts file as it is now (``accept-new`` appends to it)."""
        return self.known_hosts_file.read_text()

    def ssh_options(self) -> list[str]:
        """The ``-F``/``-o`` options every client gets (no port, no destination)."""
        methods: list[str] = []
        if self.identity_file is not None:
            methods.append("publickey")
        if self.password is not None:
            methods += ["keyboard-interactive", "password"]
        options = [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=no",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_file}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"StrictHostKeyChecking={self.strict_host_key_checking}",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "CheckHostIP=no",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "IdentityAgent=none",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            f"PubkeyAuthentication={'yes' if self.identity_file is not None else 'no'}",
        ]
        if methods:
            options += ["-o", "PreferredAuthentications=" + ",".join(methods)]
        if self.identity_file is not None:
            options += ["-i", str(self.identity_file)]
        return options

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a client process: a minimal one, never the caller's.

        Holds the password (in :data:`PASSWORD_ENV`) only when there is one.
        """
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            "SSH_ASKPASS": str(self.askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "hoopd test",
            "GIT_AUTHOR_EMAIL": "test@example.test",
            "GIT_COMMITTER_NAME": "hoopd test",
            "GIT_COMMITTER_EMAIL": "test@example.test",
        }
        if self.password is not None:
            env[PASSWORD_ENV] = self.password
        if extra:
            env.update(extra)
        return env

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}"

    def remote(self, path: str) -> str:
        """``user@host:path``, for scp and rsync."""
        return f"{self.destination}:{path}"

    def ssh_command(self) -> str:
        """``ssh`` with every option, as one shell string (for ``rsync -e``, git)."""
        return shlex.join(["ssh", *self.ssh_options(), "-o", f"Port={self.port}"])

    # ------------------------------------------------------------------ running

    def background(
        self, argv: Sequence[str], *, stdout: int = subprocess.PIPE
    ) -> subprocess.Popen[bytes]:
        """``argv`` (an ssh, scp or sftp command line) running in the background, in
        a session of its own, with this client's environment; no stdin, stderr piped
        (and stdout, unless ``stdout`` says otherwise). The caller ends it."""
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=self.env(),
            start_new_session=True,
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SshResult:
        """Run any client with this client's environment, no terminal, and a deadline.

        The process gets a session of its own (no controlling terminal, so every
        password goes through askpass); on timeout it is killed by PID and
        AssertionError is raised.
        """
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd or self.dir,
            env=self.env(extra_env),
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise AssertionError(
                f"{argv[0]} did not finish in {timeout or self.timeout}s; stderr:\n"
                + stderr.decode(errors="replace")[-3000:]
            ) from None
        return SshResult(tuple(argv), proc.returncode, stdout, stderr)

    def ssh(
        self,
        command: str | None = None,
        *,
        input: bytes | None = None,
        options: Sequence[str] = (),
        timeout: float | None = None,
    ) -> SshResult:
        """``ssh user@host command``: the remote command line is ``command`` as given.

        The exit status is the remote command's (255: ssh itself failed).
        """
        argv = ["ssh", *self.ssh_options(), "-p", str(self.port), *options, self.destination]
        if command is not None:
            argv.append(command)
        return self.run(argv, input=input, timeout=timeout)

    def scp(
        self,
        sources: Sequence[str | Path],
        destination: str | Path,
        *,
        legacy: bool = False,
        options: Sequence[str] = (),
        timeout: float | None = None,
    ) -> SshResult:
        """``scp`` (over the sftp subsystem, or ``-O``: the ``scp -t/-f`` exec protocol).

        Remote paths are written with :meth:`remote`.
        """
        argv = ["scp", *self.ssh_options(), "-P", str(self.port), "-q"]
        if legacy:
            argv.append("-O")
        argv += [*options, *map(str, sources), str(destination)]
        return self.run(argv, timeout=timeout)

    def upload(self, local: Path, remote_path: str, *, legacy: bool = False) -> SshResult:
        return self.scp([local], self.remote(remote_path), legacy=legacy)

    def download(self, remote_path: str, local: Path, *, legacy: bool = False) -> SshResult:
        return self.scp([self.remote(remote_path)], local, legacy=legacy)

    def sftp_batch(
        self, commands: Sequence[str], *, options: Sequence[str] = (), timeout: float | None = None
    ) -> SshResult:
        """``sftp -b`` with these commands; sftp stops at the first failing one.

        sftp adds ``BatchMode=yes`` for ``-b``, which would forbid askpass; our
        ``BatchMode=no`` comes first on its command line, and ssh keeps the first.
        """
        batch = Path(tempfile.mkstemp(prefix="sftp-batch-", dir=self.dir)[1])
        batch.write_text("".join(command + "\n" for command in commands))
        try:
            argv = [
                "sftp",
                *self.ssh_options(),
                "-P",
                str(self.port),
                *options,
                "-b",
                str(batch),
                self.destination,
            ]
            return self.run(argv, timeout=timeout)
        finally:
            batch.unlink(missing_ok=True)

    def rsync(
        self,
        sources: Sequence[str | Path],
        destination: str | Path,
        *,
        options: Sequence[str] = ("-a",),
        timeout: float | None = None,
    ) -> SshResult:
        """``rsync -e '<ssh with every option>'``; remote paths via :meth:`remote`."""
        argv = ["rsync", "-e", self.ssh_command(), *options]
        argv += [*map(str, sources), str(destination)]
        return self.run(argv, timeout=timeout)

    def git_url(self, path: str) -> str:
        """``ssh://user@host:port/path`` (``path`` absolute on the server)."""
        return f"ssh://{self.destination}:{self.port}/{path.lstrip('/')}"

    def git(self, *args: str, cwd: Path | None = None, timeout: float | None = None) -> SshResult:
        """``git`` with ``GIT_SSH_COMMAND`` set to this client's ssh."""
        return self.run(
            ["git", *args],
            cwd=cwd,
            extra_env={"GIT_SSH_COMMAND": self.ssh_command(), "GIT_SSH_VARIANT": "ssh"},
            timeout=timeout,
        )

    @contextmanager
    def forwarding(
        self, flags: Sequence[str], stderr_path: Path
    ) -> Iterator[subprocess.Popen[bytes]]:
        """``ssh -N -o ExitOnForwardFailure=yes FLAGS`` in the background, its stderr
        in ``stderr_path``; ended by PID on exit (SIGTERM, then SIGKILL)."""
        argv = [
            "ssh", *self.ssh_options(), "-p", str(self.port), "-N",
            "-o", "ExitOnForwardFailure=yes", *flags, self.destination,
        ]  # fmt: skip
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=self.env(),
                start_new_session=True,
            )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    @contextmanager
    def local_forward(
        self, target_host: str, target_port: int, *, local_port: int | None = None
    ) -> Iterator[int]:
        """``ssh -N -L 127.0.0.1:LOCAL:target_host:target_port``; yields the local port.

        Guaranteed on entry: the forward's local port accepts connections (ssh has
        authenticated; ``ExitOnForwardFailure=yes``). On exit ssh is ended by PID.
        """
        port = local_port if local_port is not None else free_port()
        spec = f"127.0.0.1:{port}:{target_host}:{target_port}"
        stderr_path = self.dir / f"forward-{port}.stderr"
        try:
            with self.forwarding(["-L", spec], stderr_path) as proc:
                wait_while_ssh_runs(
                    proc,
                    stderr_path,
                    lambda: _accepts("127.0.0.1", port),
                    f"ssh -L never listened on {port}",
                )
                yield port
        finally:
            stderr_path.unlink(missing_ok=True)

    def interactive(
        self,
        command: str | None = None,
        *,
        width: int = 120,
        height: int = 30,
        options: Sequence[str] = (),
    ) -> TmuxSession:
        """An ``ssh -tt`` session running in tmux (a real pty of ``width`` x ``height``).

        ssh runs under sh, which prints ``[exited N]`` when it ends, for
        :meth:`TmuxSession.wait_exit`: tmux can report a pane dead before it knows
        its status, and then never does. The caller closes the session (it is a
        context manager).
        """
        argv = ["ssh", *self.ssh_options(), "-p", str(self.port), "-tt", *options]
        argv.append(self.destination)
        if command is not None:
            argv.append(command)
        wrapped = ["sh", "-c", f'"$@"; echo "{EXITED} $?]"; exec sleep 600', "sh", *argv]
        return TmuxSession.start(wrapped, env=self.env(), width=width, height=height)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


EXITED = "[exited"
"""How the exit-status line of :meth:`SshClient.interactive` starts."""


class TmuxSession:
    """One command in a detached tmux session, on a tmux server of its own.

    The server's socket lives in a temporary directory of its own and it reads no
    configuration (``-f /dev/null``); :meth:`close` kills that server (and,
    should it linger, its PID). The command's environment is the ``env`` given
    to :meth:`start` (tmux copies its server's), so secrets stay off command lines.
    """

    def __init__(self, socket_path: Path, name: str, env: Mapping[str, str]) -> None:
        self.socket_path = socket_path
        self.name = name
        self._env = dict(env)
        self.server_pid: int | None = None

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        width: int = 120,
        height: int = 30,
    ) -> TmuxSession:
        # A short path of its own: a unix socket path must fit in 108 bytes, and
        # pytest's directories can be long. Removed by close().
        sock_dir = Path(tempfile.mkdtemp(prefix="hoopd-tmux-"))
        session = cls(sock_dir / "sock", "t", env)
        try:
            # One command list, so the pane is kept (remain-on-exit) even if the
            # command exits at once, and its last words and exit status stay readable.
            pid = session.tmux(
                "start-server",
                ";",
                "set-option",
                "-g",
                "remain-on-exit",
                "on",
                ";",
                "new-session",
                "-d",
                "-s",
                session.name,
                "-x",
                str(width),
                "-y",
                str(height),
                shlex.join(argv),
                ";",
                "display-message",
                "-p",
                "#{pid}",
            )
            session.server_pid = int(pid.strip())
        except BaseException:
            session.close()
            raise
        return session

    def tmux(self, *args: str, check: bool = True) -> str:
        """Run a tmux command against this session's server; its stdout."""
        done = subprocess.run(
            ["tmux", "-f", "/dev/null", "-S", str(self.socket_path), *args],
            capture_output=True,
            text=True,
            env=self._env,
            timeout=30,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def send_keys(self, *keys: str) -> None:
        """tmux key names (``Enter``, ``C-c``, ``Up``) or plain text, as tmux parses them."""
        self.tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str, *, enter: bool = True) -> None:
        """Type ``text`` literally, then Enter unless told not to."""
        self.tmux("send-keys", "-t", self.name, "-l", text)
        if enter:
            self.send_keys("Enter")

    def capture(self, *, history: bool = False) -> str:
        """The visible pane as text (trailing blank lines kept out); with ``history``,
        the scrollback too (a dead pane's status line can push output into it)."""
        start = ["-S", "-"] if history else []
        return self.tmux("capture-pane", "-p", "-J", *start, "-t", self.name).rstrip()

    def wait_for(self, pattern: str, *, timeout: float = 15.0, flags: int = re.M) -> re.Match[str]:
        """Poll the pane until a regex matches it; AssertionError with the pane if not."""
        regex = re.compile(pattern, flags)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.capture())
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pane never showed {pattern!r} within {timeout}s; pane:\n{self.capture()}"
                )
            time.sleep(0.05)

    def resize(self, width: int, height: int) -> None:
        """Resize the window: the pty changes size and its program gets SIGWINCH."""
        self.tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def pane_dead(self) -> bool:
        """Whether the command in the pane has exited."""
        return self.tmux("display-message", "-p", "-t", self.name, "#{pane_dead}").strip() == "1"

    def exit_status(self) -> int | None:
        """The command's exit status once it has exited, else None: from its
        ``[exited N]`` line when it prints one (:meth:`SshClient.interactive`),
        else from tmux."""
        found = re.search(rf"^{re.escape(EXITED)} (\d+)\]$", self.capture(), re.MULTILINE)
        if found:
            return int(found.group(1))
        if not self.pane_dead():
            return None
        # tmux can report the pane dead a moment before it knows the status.
        status = self.tmux("display-message", "-p", "-t", self.name, "#{pane_dead_status}")
        return int(status) if status.strip().isdigit() else None

    def wait_exit(self, *, timeout: float = 15.0) -> int:
        """Wait for the command to exit; its exit status. AssertionError with the pane if not."""
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the command did not exit within {timeout}s; pane:\n{self.capture()}"
                )
            time.sleep(0.05)
        return status

    def close(self) -> None:
        """Kill this tmux server (its command with it); SIGKILL its PID if it lingers.

        Also removes the socket's directory.
        """
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)
        pid, self.server_pid = self.server_pid, None
        if pid is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> TmuxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Ready = TypeVar("Ready")


def wait_while_ssh_runs(
    proc: subprocess.Popen[bytes],
    stderr_path: Path,
    ready: Callable[[], Ready],
    failure: str,
    seconds: float = FORWARD_DEADLINE_SECONDS,
) -> Ready:
    """Poll ``ready`` until it returns something true, and return that. Raises
    AssertionError (``failure``, ssh's exit status and the end of its stderr) if ssh
    exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not (found := ready()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"{failure} (ssh exit {proc.poll()}):\n"
                + stderr_path.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.05)
    return found
