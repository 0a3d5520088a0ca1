"""SSH benchmark: the target's sshd directly vs through hoopd (recording on), same run.

    .venv/bin/python bench/ssh_bench.py          (also run by `make bench`)

Starts a real OpenSSH sshd on 127.0.0.1 (as the tests do, tests/support/sshserver.py)
and a gateway with one ssh connection to it (key auth, pinned host key), then times:

* ``ssh host 'head -c N /dev/zero'`` with its output thrown away (BENCH_SSH_MB, default
  500), once with OpenSSH's default cipher and once with ``aes128-gcm@openssh.com``;
* ``scp`` (sftp mode) uploading a file of BENCH_SCP_MB (default 200) to the target.

Each is run directly against sshd (the client key), through two peers and through
hoopd (a gateway token through SSH_ASKPASS), BENCH_REPEATS times (default 3, median
kept; the paths take turns, so that each ratio compares runs made at about the same
time). The peers are bench/asyncssh_relay_proxy.py, a bare asyncssh man-in-the-middle
with AES-GCM on both legs that judges nothing:

* ``asyncssh-relay``: on plain asyncio, recording nothing: the floor under any
  asyncssh gateway;
* ``relay-floor``: the same relay hosted by trio through trio-asyncio and appending
  every chunk to a hoopd journal before forwarding it: the floor under a gateway built
  as hoopd must be (asyncssh on trio, every byte recorded). Exec requests only, so it
  is not run for scp.

It prints MB/s, the ratio to direct and, for hoopd, to each peer, and the CPU seconds
per GB of the hoopd and peer processes; writes the same to ``bench/results/ssh.json``
(keys ``path``, ``workload``, ``mb_per_s``, ``ratio_to_direct``, ``ratio_to_peer``,
``ratio_to_floor``, ``cpu_seconds_per_gb``) and asserts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pg_services import cpu_seconds  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.sshclient import SshClient  # noqa: E402
from tests.support.sshserver import SshServer, running_sshd  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ssh.json"
PEER_SCRIPT = ROOT / "bench" / "asyncssh_relay_proxy.py"
CIPHERS = {"default": [], "aes128-gcm": ["-c", "aes128-gcm@openssh.com"]}
#: The peers, and the key of hoopd's ratio to each.
PEERS = {"asyncssh-relay": "ratio_to_peer", "relay-floor": "ratio_to_floor"}


def _config(root: Path, sshd: SshServer, port: int, token_hash: str) -> Path:
    config = root / "hoopd.toml"
    config.write_text(
        f"""[gateway]
data_dir = "{root / "data"}"
log_level = "warning"

[[tokens]]
identity = "bench"
sha256 = "{token_hash}"
expires = 2099-01-01T00:00:00Z

[[connections]]
name = "bench"
protocol = "ssh"
listen = "127.0.0.1:{port}"
  [connections.target]
  host = "127.0.0.1"
  port = {sshd.port}
  user = "{sshd.user}"
  secret = {{ file = "{sshd.client_key}" }}
  host_key = "{sshd.host_key}"
"""
    )
    return config


def _start_gateway(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "hoopd", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("hoopd serve exited:\n" + log.read_text()[-2000:])
        probe = subprocess.run(
            ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True
        )
        if probe.returncode == 0:
            return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("hoopd serve did not start listening")


def _start_peer(
    sshd: SshServer, port: int, password: str, options: list[str]
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, str(PEER_SCRIPT), "--listen-port", str(port),
         "--target-port", str(sshd.port), "--target-user", sshd.user,
         "--target-key", str(sshd.client_key), "--password", password, *options],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        process.kill()
        raise RuntimeError(f"the asyncssh-relay peer {options} did not start")
    return process


def _timed(client: SshClient, argv: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(
        argv, env=client.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def _stream(client: SshClient, megabytes: int, cipher: list[str]) -> float:
    argv = ["ssh", *client.ssh_options(), "-p", str(client.port), *cipher, client.destination]
    return megabytes / _timed(client, [*argv, f"head -c {megabytes}M /dev/zero"])


def _upload(client: SshClient, source: Path, megabytes: int) -> float:
    argv = ["scp", *client.ssh_options(), "-P", str(client.port), "-q"]
    return megabytes / _timed(client, [*argv, str(source), client.remote("bench-upload.bin")])


def main() -> int:
    megabytes = int(os.environ.get("BENCH_SSH_MB", "500"))
    scp_megabytes = int(os.environ.get("BENCH_SCP_MB", "200"))
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    root = Path(tempfile.mkdtemp(prefix="hoopd-bench-ssh-"))
    try:
        rows = _run(root, megabytes, scp_megabytes, repeats)
    finally:
        # The recordings alone hold every byte streamed: about a gigabyte a run.
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{'workload':38s} {'path':15s} {'MB/s':>8s} {'x direct':>9s} {'x peer':>7s}"
        f" {'x floor':>8s} {'CPU s/GB':>9s}"
    )
    for row in rows:
        ratio, peer = row.get("ratio_to_direct"), row.get("ratio_to_peer")
        floor = row.get("ratio_to_floor")
        cpu = row.get("cpu_seconds_per_gb")
        shown = f"{ratio:.2f}x" if isinstance(ratio, float) else "-"
        over_peer = f"{peer:.2f}x" if isinstance(peer, float) else "-"
        over_floor = f"{floor:.2f}x" if isinstance(floor, float) else "-"
        per_gb = f"{cpu:.2f}" if isinstance(cpu, float) else "-"
        print(
            f"{row['workload']!s:38s} {row['path']!s:15s} {row['mb_per_s']:8.1f}"
            f" {shown:>9s} {over_peer:>7s} {over_floor:>8s} {per_gb:>9s}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _run(root: Path, megabytes: int, scp_megabytes: int, repeats: int) -> list[dict[str, object]]:
    """Every row of the comparison, measured with the servers under ``root``."""
    rows: list[dict[str, object]] = []
    processes: list[subprocess.Popen[bytes]] = []
    with running_sshd(root / "sshd") as sshd:
        token = "hoopd_bench-" + secrets.token_urlsafe(24)
        port, peer_port, floor_port = free_port(), free_port(), free_port()
        config = _config(root, sshd, port, hashlib.sha256(token.encode()).hexdigest())
        try:
            processes.append(_start_gateway(config, port, root / "hoopd.log"))
            processes.append(_start_peer(sshd, peer_port, token, []))
            floor_options = ["--on-trio", "--record", str(root / "floor-data")]
            processes.append(_start_peer(sshd, floor_port, token, floor_options))
            pids = {
                "hoopd": processes[0].pid,
                "asyncssh-relay": processes[1].pid,
                "relay-floor": processes[2].pid,
            }
            clients = {
                "direct": SshClient(
                    sshd.host, sshd.port, sshd.user, root / "direct",
                    identity_file=sshd.client_key, known_hosts=[sshd.known_hosts_line],
                ),
                "asyncssh-relay": SshClient(
                    "127.0.0.1", peer_port, "bench", root / "peer", password=token,
                    strict_host_key_checking="accept-new",
                ),
                "relay-floor": SshClient(
                    "127.0.0.1", floor_port, "bench", root / "floor", password=token,
                    strict_host_key_checking="accept-new",
                ),
                "hoopd": SshClient(
                    "127.0.0.1", port, "bench", root / "hoopd", password=token,
                    strict_host_key_checking="accept-new",
                ),
            }  # fmt: skip
            payload = root / "upload.bin"
            with open(payload, "wb") as out:
                out.truncate(scp_megabytes * 1024 * 1024)
            for name, cipher in CIPHERS.items():
                workload = f"ssh head -c {megabytes}M ({name})"
                rows += _compare(
                    workload,
                    {path: partial(_stream, c, megabytes, cipher) for path, c in clients.items()},
                    repeats,
                    megabytes,
                    pids,
                )
            workload = f"scp upload {scp_megabytes} MB"
            rows += _compare(
                workload,
                {
                    path: partial(_upload, c, payload, scp_megabytes)
                    for path, c in clients.items()
                    if path not in PEERS  # they relay exec requests only
                },
                repeats,
                scp_megabytes,
                pids,
            )
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
    return rows


def _compare(
    workload: str,
    measures: dict[str, Callable[[], float]],
    repeats: int,
    megabytes: int,
    pids: dict[str, int],
) -> list[dict[str, object]]:
    """One row per path, each the median of ``repeats`` runs, in the order given
    (direct first); ratios to direct and, for hoopd, to the peer; for the paths with a
    process in ``pids``, its CPU seconds per GB carried (all runs together).

    The paths take turns (direct, the peers, hoopd, direct, ...) rather than each running all
    its repeats in a row: this machine's speed drifts from minute to minute, and a
    ratio should compare runs made at about the same time."""
    runs: dict[str, list[float]] = {path: [] for path in measures}
    cpu = dict.fromkeys(measures, 0.0)
    for _ in range(repeats):
        for path, measure in measures.items():
            before = cpu_seconds(pids[path]) if path in pids else 0.0
            runs[path].append(measure())
            if path in pids:
                cpu[path] += cpu_seconds(pids[path]) - before
    speeds = {path: float(statistics.median(values)) for path, values in runs.items()}
    gigabytes = megabytes * repeats / 1024
    rows: list[dict[str, object]] = []
    for path, speed in speeds.items():
        row: dict[str, object] = {"path": path, "workload": workload, "mb_per_s": speed}
        if path in pids:
            row["cpu_seconds_per_gb"] = cpu[path] / gigabytes
        if path != "direct":
            row["ratio_to_direct"] = speed / speeds["direct"]
        if path == "hoopd":
            for peer, key in PEERS.items():
                if peer in speeds:
                    row[key] = speed / speeds[peer]
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
