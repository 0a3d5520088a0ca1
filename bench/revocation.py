"""How fast a revocation ends live sessions: `hoopd revoke` to psql's exit.

    .venv/bin/python bench/revocation.py        (also run by `make bench`)

Starts a PostgreSQL cluster and one gateway, mints a delegated token ``fleet`` from
the bench's static token and, from it, one token per agent (BENCH_AGENTS, default 16),
opens one psql session per agent token running ``SELECT pg_sleep(60)``, then runs
``hoopd revoke <fleet's token id>``. It reports, for every session, the time from
the revocation being written to psql exiting (with the gateway's revocation message),
and the time until the target no longer runs any of the sleeps. Times are measured
from the revocation's commit (its ``revoked_at`` in the store) on the wall clock.
It is not a test and asserts nothing; it writes ``bench/results/revocation.json``
and exits 1 if a session did not end within 10 s or ended without the revocation
message.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pg_services import DATABASE, Hoopd, start_cluster  # noqa: E402
from hoopd.config import load_config, token_store_dir  # noqa: E402
from hoopd.pgcluster import LocalCluster  # noqa: E402
from hoopd.tokens.store import TokenStore  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "revocation.json"
END_DEADLINE_SECONDS = 10.0
MESSAGE = "was revoked"


def hoopd_cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if token is not None:
        env["HOOPD_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "hoopd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def token_id(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return "gt:" + str(claims["jti"])


def sleeping_backends(cluster: LocalCluster) -> int:
    out = cluster.psql(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"
    )
    return int(out.strip())


def main() -> int:
    agents = int(os.environ.get("BENCH_AGENTS", "16"))
    root = Path(tempfile.mkdtemp(prefix="hoopd-bench-revoke-"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root / "pg")
    gateway: Hoopd | None = None
    clients: list[subprocess.Popen[str]] = []
    try:
        password = start_cluster(cluster, root / "pg.log")
        gateway = Hoopd(root, cluster.port, password, "process-crash")
        leg = gateway.start()
        config = str(gateway.dir / "hoopd.toml")
        exchange = ("token", "exchange", "--config", config, "--ttl", "600")
        fleet = hoopd_cli(
            *exchange, "--scope", f"{DATABASE}:read", "--actor", "fleet", token=leg.password
        ).stdout.strip()
        env = {**leg.client_env()}
        for index in range(agents):
            agent = hoopd_cli(*exchange, "--actor", f"agent-{index}", token=fleet).stdout.strip()
            clients.append(
                subprocess.Popen(
                    ["psql", "-X", "-At", "-c", "SELECT pg_sleep(60)"],
                    env={**env, "PGPASSWORD": agent},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + 30
        while sleeping_backends(cluster) < agents and time.monotonic() < deadline:
            time.sleep(0.05)
        exits: list[tuple[float, str]] = []

        def watch(client: subprocess.Popen[str]) -> None:
            try:
                _, err = client.communicate(timeout=END_DEADLINE_SECONDS + 60)
            except subprocess.TimeoutExpired:
                return
            exits.append((time.time(), err))

        watchers = [threading.Thread(target=watch, args=(c,), daemon=True) for c in clients]
        for watcher in watchers:
            watcher.start()
        asked = time.monotonic()
        hoopd_cli("revoke", token_id(fleet), "--config", config, "--reason", "bench")
        command_ms = (time.monotonic() - asked) * 1000
        with TokenStore.open(token_store_dir(load_config(config))) as store:
            revoked_at = store.revocations_since(0)[-1].revoked_at
        problems: list[str] = []
        backends_gone = None
        while time.time() < revoked_at + END_DEADLINE_SECONDS:
            if backends_gone is None and sleeping_backends(cluster) == 0:
                backends_gone = time.time() - revoked_at
            if len(exits) == agents and backends_gone is not None:
                break
            time.sleep(0.01)
        ended = [max(0.0, when - revoked_at) for when, _ in exits]
        if len(ended) < agents:
            problems.append(f"{agents - len(ended)} sessions did not end within 10 s")
        for _, err in exits:
            if MESSAGE not in err:
                problems.append(f"a session ended without the revocation message: {err.strip()}")
        if backends_gone is None:
            problems.append("the target still runs revoked sessions' statements after 10 s")
        result = {
            "sessions": agents,
            "revoke_command_ms": round(command_ms, 1),
            "ended": len(ended),
            "client_end_ms_median": round(statistics.median(ended) * 1000, 1) if ended else None,
            "client_end_ms_max": round(max(ended) * 1000, 1) if ended else None,
            "target_statements_gone_ms": (
                round(backends_gone * 1000, 1) if backends_gone is not None else None
            ),
        }
        print(
            f"revocation of one token with {agents} live descendant sessions:"
            f" `hoopd revoke` took {result['revoke_command_ms']} ms (a new process);"
            " from the revocation's commit, clients were told and disconnected after"
            f" median {result['client_end_ms_median']} ms,"
            f" max {result['client_end_ms_max']} ms; the target's statements gone after"
            f" {result['target_statements_gone_ms']} ms"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return 1 if problems else 0
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
        if gateway is not None:
            gateway.stop()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
