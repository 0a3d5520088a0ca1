"""The workloads: pgbench select-only runs, timed COPY transfers and one large SELECT,
one leg at a time.

Each run returns a :class:`Measurement`, or raises :class:`RunFailed` with the client's
own error output. CPU is sampled from ``/proc`` just before the client starts and just
after it exits, so connection set-up and tear-down are charged to the run.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.pg_services import Leg, cpu_seconds
from hoopd.pgcluster import LocalCluster

PGBENCH_MODES = ("simple", "extended", "prepared")
COPY_MODES = ("copy-in", "copy-out")
LARGE_SELECT = "large-select"
SCALE = 10
LARGE_SELECT_ROWS = SCALE * 100_000  # every row of pgbench_accounts
COPY_SOURCE_TABLE = "copy_src"
COPY_TARGET_TABLE = "copy_in"
# Width of one row of the COPY table in text format, for sizing the file (see prepare_copy).
_COPY_ROW_BYTES = 104
# A client that has not finished this long after its nominal duration is stuck.
_GRACE_SECONDS = 90.0


class RunFailed(Exception):
    """A client exited with an error, timed out, or printed something unparseable."""


@dataclass(frozen=True)
class Measurement:
    """One run of one configuration on one leg."""

    seconds: float  # wall time of the client process
    statements: int
    tps: float | None
    latency_ms: float
    cpu_seconds: float | None  # of the leg's process, over the run
    mb_per_s: float | None = None
    rows_per_s: float | None = None


def _cpu(leg: Leg) -> float | None:
    return None if leg.cpu_pid is None else cpu_seconds(leg.cpu_pid)


def _run_client(
    leg: Leg, argv: list[str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], float, float | None]:
    """Run psql/pgbench on the leg; returns its result, wall seconds and leg CPU seconds."""
    cpu_before = _cpu(leg)
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            env=leg.client_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RunFailed(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    elapsed = time.monotonic() - started
    cpu_after = _cpu(leg)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    if done.returncode != 0:
        output = done.stderr.strip() or done.stdout.strip() or "(no output)"
        tail = "\n".join(output.splitlines()[-8:])
        raise RunFailed(f"{argv[0]} exited with status {done.returncode}:\n{tail}")
    return done, elapsed, cpu


# --- preparation (direct, untimed) --------------------------------------------------------


def initialise_pgbench(cluster: LocalCluster, direct: Leg) -> float:
    """``pgbench -i -s 10`` straight at the target; returns the seconds it took."""
    started = time.monotonic()
    _run_client(direct, ["pgbench", "-i", "-q", "-s", str(SCALE)], timeout=600)
    elapsed = time.monotonic() - started
    accounts = cluster.psql("SELECT count(*) FROM pgbench_accounts;", database="bench").strip()
    if accounts != str(SCALE * 100_000):
        raise RunFailed(f"pgbench -i left {accounts} rows in pgbench_accounts")
    return elapsed


def prepare_copy(cluster: LocalCluster, direct: Leg, data_file: Path, megabytes: float) -> int:
    """Fill the COPY source table, write it to ``data_file`` (the COPY FROM input), and
    create the empty target table; returns the number of rows."""
    rows = max(1, round(megabytes * 1_000_000 / _COPY_ROW_BYTES))
    sql = f"""
SET ROLE bench;
SET client_min_messages = warning;
DROP TABLE IF EXISTS {COPY_SOURCE_TABLE}, {COPY_TARGET_TABLE};
CREATE TABLE {COPY_SOURCE_TABLE} (
    id bigint, digest text, other text, at timestamptz, bucket int
);
INSERT INTO {COPY_SOURCE_TABLE}
SELECT i, md5(i::text), md5((i * 7919)::text),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i % 1000
FROM generate_series(1::bigint, {rows}) AS i;
CREATE TABLE {COPY_TARGET_TABLE} (LIKE {COPY_SOURCE_TABLE});
VACUUM ANALYZE {COPY_SOURCE_TABLE};
"""
    cluster.psql(sql, database="bench")
    _run_client(
        direct,
        [
            "psql",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy {COPY_SOURCE_TABLE} to '{data_file}'",
        ],
        timeout=600,
    )
    return rows


def reset_copy_target(cluster: LocalCluster) -> None:
    """Empty the COPY FROM table and checkpoint, so every leg starts from the same state."""
    cluster.psql(f"TRUNCATE {COPY_TARGET_TABLE};\nCHECKPOINT;\n", database="bench")


# --- timed runs ---------------------------------------------------------------------------


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise RunFailed(f"pgbench output lacks /{pattern}/:\n{text.strip()}")
    return float(found.group(1))


def run_pgbench(leg: Leg, mode: str, clients: int, seconds: int) -> Measurement:
    """``pgbench -n -S -M mode`` for ``seconds``; one SELECT per transaction."""
    threads = min(clients, os.cpu_count() or 1)
    argv = [
        "pgbench",
        "-n",
        "-S",
        "-M",
        mode,
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
    ]
    done, elapsed, cpu = _run_client(leg, argv, timeout=seconds + _GRACE_SECONDS)
    out = done.stdout
    processed = int(_number(r"number of transactions actually processed: (\d+)", out))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if failed is not None and int(failed.group(1)) > 0:
        raise RunFailed(f"pgbench reported {failed.group(1)} failed transactions")
    if processed == 0:
        raise RunFailed("pgbench processed no transactions")
    return Measurement(
        seconds=elapsed,
        statements=processed,
        tps=_number(r"tps = ([\d.]+) \(without initial connection time\)", out),
        latency_ms=_number(r"latency average = ([\d.]+) ms", out),
        cpu_seconds=cpu,
    )


def run_copy(leg: Leg, mode: str, data_file: Path, rows: int, timeout: float) -> Measurement:
    """One psql ``\\copy`` of the whole file, in (``copy-in``) or out (``copy-out``),
    timed from psql's start to its exit (connection set-up included)."""
    if mode == "copy-in":
        command = f"\\copy {COPY_TARGET_TABLE} from '{data_file}'"
    else:
        command = f"\\copy (select * from {COPY_SOURCE_TABLE}) to '/dev/null'"
    argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", command]
    done, elapsed, cpu = _run_client(leg, argv, timeout=timeout)
    if done.stdout.strip() != f"COPY {rows}":
        raise RunFailed(f"expected 'COPY {rows}' from psql, got {done.stdout.strip()!r}")
    size = data_file.stat().st_size  # text format: the bytes on the wire either way
    return Measurement(
        seconds=elapsed,
        statements=1,
        tps=None,
        latency_ms=elapsed * 1000,
        cpu_seconds=cpu,
        mb_per_s=size / 1_000_000 / elapsed,
    )


def run_large_select(leg: Leg, timeout: float) -> Measurement:
    """``psql -c "select * from pgbench_accounts" -o /dev/null``: every row, in text
    format, through the leg, timed from psql's start to its exit like COPY. psql holds the
    whole result and formats it (aligned) before writing it to /dev/null; ``\\echo
    :ROW_COUNT`` then prints the row count on stdout, which must be every row."""
    argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"]
    argv += ["-c", "select * from pgbench_accounts", "-c", "\\echo :ROW_COUNT"]
    done, elapsed, cpu = _run_client(leg, argv, timeout=timeout)
    if done.stdout.strip() != str(LARGE_SELECT_ROWS):
        raise RunFailed(f"expected {LARGE_SELECT_ROWS} rows from psql, got {done.stdout.strip()!r}")
    return Measurement(
        seconds=elapsed,
        statements=1,
        tps=None,
        latency_ms=elapsed * 1000,
        cpu_seconds=cpu,
        rows_per_s=LARGE_SELECT_ROWS / elapsed,
    )
