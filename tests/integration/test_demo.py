"""`hoopd demo` (what `make run` starts): a throwaway PostgreSQL behind a working gateway."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def read_until(process: subprocess.Popen[bytes], marker: str, deadline: float) -> str:
    """Everything the process printed up to the first appearance of ``marker``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            if marker.encode() in seen:
                return seen.decode()
    raise AssertionError(f"{marker!r} not printed; got:\n{seen.decode(errors='replace')}")


def test_demo_serves_the_sample_schema_and_records_the_session(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "hoopd", "demo", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        printed = read_until(demo, "Configuration:", time.monotonic() + 90)
        match = re.search(r"PGPASSWORD=(\S+) psql \"([^\"]+)\"", printed)
        assert match, printed
        token, dsn = match.groups()
        assert f"port={port}" in dsn

        def psql(sql: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["psql", dsn, "-At", "-c", sql],
                env={**os.environ, "PGPASSWORD": token},
                capture_output=True,
                text=True,
                timeout=30,
            )

        query = psql("SELECT full_name, email FROM customers ORDER BY id")
        assert query.returncode == 0, query.stderr
        rows = [line.split("|") for line in query.stdout.split("\n") if line]
        assert rows[0][0] == "Ada Lovelace"  # unmasked columns as stored
        # The demo policy masks e-mail addresses: the last four characters stay.
        real = ["ada@example.com", "grace@example.com", "alan@example.com"]
        assert not any(address in query.stdout for address in real)
        assert all(email.endswith(".com") and "*" in email for _, email in rows)
        refused = psql("UPDATE products SET price = 0")
        assert refused.returncode != 0
        assert "UPDATE without WHERE would change every row" in refused.stderr
        # The printed delegation recipe works: the agent's token reads and may not write.
        exchange = re.search(r"AGENT=\$\((.+?)\)\n", printed, re.DOTALL)
        assert exchange, printed
        minted = subprocess.run(
            ["bash", "-c", exchange.group(1)], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert minted.returncode == 0, minted.stderr
        agent = minted.stdout.strip()
        as_agent = subprocess.run(
            ["psql", dsn, "-At", "-c", "SELECT count(*) FROM products", "-c", "DELETE FROM orders"],
            env={**os.environ, "PGPASSWORD": agent},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert as_agent.stdout.strip().isdigit(), as_agent.stderr
        assert "the token's scope allows read on shop" in as_agent.stderr
        # The upstream password is in a 0600 file, never in what the demo printed.
        secret = (data_dir / "secrets" / "shop.password").read_text().strip()
        assert (data_dir / "secrets" / "shop.password").stat().st_mode & 0o777 == 0o600
        assert secret not in printed
        sessions = subprocess.run(
            [sys.executable, "-m", "hoopd", "sessions", "--data-dir", str(data_dir / "state")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "demo-user" in sessions.stdout and "shop" in sessions.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        status = demo.wait(timeout=60)
    assert status == 0
    # The throwaway PostgreSQL went down with the demo, and its files with it.
    assert not list(Path(tempfile.gettempdir()).glob("hoopd-demo-pg-*/pgdata/postmaster.pid"))
