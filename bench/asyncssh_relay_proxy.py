"""A bare SSH man-in-the-middle on asyncssh: the floor under hoopd's SSH figures.

    python bench/asyncssh_relay_proxy.py --listen-port P --target-port Q \
        --target-user U --target-key KEY --password PW [--on-trio] [--record DIR]

Listens on 127.0.0.1:P only and prints ``ready`` on stdout once listening. A client
that logs in with password PW (any user name) has each exec request run, as U
authenticated with KEY, on the sshd at 127.0.0.1:Q (whose host key is not checked:
this is a benchmark peer, never a gateway); stdin, stdout and stderr are copied
with asyncssh's flow control and the exit status comes back. It judges nothing, uses
AES-GCM on both legs (as hoopd does) and, by default, records nothing and runs on a
plain asyncio loop, without trio. SIGTERM ends the process with status 0.

Two options add what hoopd must do on top of relaying, one at a time or both:
``--on-trio`` hosts the asyncio loop in trio through trio-asyncio (as hoopd hosts
asyncssh); ``--record DIR`` appends every chunk to a hoopd journal in DIR (one
session per exec request) before forwarding it, as hoopd's relay does. With both, it
is the floor of any gateway built the way hoopd must be: asyncssh on trio-asyncio,
recording every byte.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import asyncssh
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hoopd.recording.journal import Journal  # noqa: E402
from hoopd.recording.recorder import SessionRecorder  # noqa: E402

HOST = "127.0.0.1"
#: The most read (and, with --record, recorded) at once: as hoopd's relay.
CHUNK = 512 * 1024
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


async def _copy(
    source: asyncssh.SSHReader[bytes],
    sink: asyncssh.SSHWriter[bytes],
    record: SessionRecorder | None,
    kind: str,
) -> None:
    while data := await source.read(CHUNK):
        if record is not None:
            record.append_now([(kind, {"channel": 1, "data": data})])
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


async def _serve(
    process: asyncssh.SSHServerProcess[bytes], args: argparse.Namespace, journal: Journal | None
) -> None:
    record = None
    if journal is not None:
        record = journal.start_session(
            connection="peer", protocol="ssh", client_addr="127.0.0.1:0",
            identity=None, attributes={},
        )  # fmt: skip
    async with asyncssh.connect(
        HOST, args.target_port, username=args.target_user,
        client_keys=[args.target_key], known_hosts=None, agent_path=None,
        config=None, encryption_algs=CIPHERS,
    ) as upstream:  # fmt: skip
        target = await upstream.create_process(process.command, encoding=None)
        await asyncio.gather(
            _copy(process.stdin, target.stdin, record, "stdin"),
            _copy(target.stdout, process.stdout, record, "stdout"),
            _copy(target.stderr, process.stderr, record, "stderr"),
        )
        await target.wait_closed()
        process.exit(target.exit_status if target.exit_status is not None else 255)


async def _main(args: argparse.Namespace) -> None:
    journal = Journal.open(args.record) if args.record is not None else None
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen(
        HOST, args.listen_port, server_host_keys=[key],
        server_factory=lambda: _Server(args.password),
        process_factory=lambda process: _serve(process, args, journal),
        encoding=None, encryption_algs=CIPHERS, line_editor=False,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    if journal is not None:
        journal.close()


async def _main_on_trio(args: argparse.Namespace) -> None:
    # As hoopd hosts asyncssh: an asyncio loop that trio runs. Imported only here:
    # importing trio-asyncio makes asyncio.run() itself run on a trio-asyncio loop,
    # and the plain relay must stay plain.
    from protocols.ssh.bridge import open_loop, to_trio

    async with open_loop():
        await to_trio(_main)(args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--target-user", required=True)
    parser.add_argument("--target-key", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--on-trio", action="store_true", help="host asyncio in trio")
    parser.add_argument("--record", type=Path, help="record into a hoopd journal here")
    args = parser.parse_args()
    if args.on_trio:
        trio.run(_main_on_trio, args)
    else:
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
