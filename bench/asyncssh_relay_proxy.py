"""A bare SSH man-in-the-middle on asyncssh and plain asyncio: the floor under hoopd's
SSH figures.

    python bench/asyncssh_relay_proxy.py --listen-port P --target-port Q \
        --target-user U --target-key KEY --password PW

Listens on 127.0.0.1:P only and prints ``ready`` on stdout once listening. A client
that logs in with password PW (any user name) has each exec request run, as U
authenticated with KEY, on the sshd at 127.0.0.1:Q (whose host key is not checked:
this is a benchmark peer, never a gateway); stdin, stdout and stderr are copied
with asyncssh's flow control and the exit status comes back. It judges nothing and
records nothing, uses AES-GCM on both legs (as hoopd does) and runs on a plain
asyncio loop, without trio. SIGTERM ends the process with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import asyncssh

HOST = "127.0.0.1"
CHUNK = 128 * 1024
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


async def _copy(source: asyncssh.SSHReader[bytes], sink: asyncssh.SSHWriter[bytes]) -> None:
    while data := await source.read(CHUNK):
        sink.write(data)
        await sink.drain()
    with contextlib.suppress(OSError, asyncssh.Error):
        sink.write_eof()


class _Server(asyncssh.SSHServer):
    def __init__(self, password: str) -> None:
        self._password = password

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == self._password


async def _serve(process: asyncssh.SSHServerProcess[bytes], args: argparse.Namespace) -> None:
    async with asyncssh.connect(
        HOST, args.target_port, username=args.target_user,
        client_keys=[args.target_key], known_hosts=None, agent_path=None,
        config=None, encryption_algs=CIPHERS,
    ) as upstream:  # fmt: skip
        target = await upstream.create_process(process.command, encoding=None)
        await asyncio.gather(
            _copy(process.stdin, target.stdin),
            _copy(target.stdout, process.stdout),
            _copy(target.stderr, process.stderr),
        )
        await target.wait_closed()
        process.exit(target.exit_status if target.exit_status is not None else 255)


async def _main(args: argparse.Namespace) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen(
        HOST, args.listen_port, server_host_keys=[key],
        server_factory=lambda: _Server(args.password),
        process_factory=lambda process: _serve(process, args),
        encoding=None, encryption_algs=CIPHERS, line_editor=False,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--target-user", required=True)
    parser.add_argument("--target-key", required=True)
    parser.add_argument("--password", required=True)
    asyncio.run(_main(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
