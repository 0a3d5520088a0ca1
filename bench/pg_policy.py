"""The policy directory of the ``hoopd-policy`` path, written at setup and checked with
``hoopd policy check`` and ``hoopd policy test`` before anything is measured.

It holds the rule files of two shipped packs, ``policies/destructive-sql`` and
``policies/strict`` (their test files are left behind: they name other connections),
plus ``bench.yaml`` with the mask rules below and ``bench.test.yaml`` with cases that pin
the verdict on every statement the benchmark sends through the path. The strict pack's
``plain-reads`` rule allows those statements, so ``bench.yaml`` needs no allow rule of its
own; should the pack change, ``hoopd policy test`` fails at setup and says which case.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.pg_services import BenchSetupError, Leg
from bench.pg_workloads import PGBENCH_MODES

REPO = Path(__file__).resolve().parent.parent
PACKS = ("destructive-sql", "strict")
# What the mask rules replace a whole column value with (style redact; docs/masking.md).
REDACTED = "[redacted]"
# Masked on the path: abalance is the one column pgbench -S reads (it does not check the
# value); filler is a text column every row of large-select carries.
MASKED_COLUMNS = ("pgbench_accounts.abalance", "pgbench_accounts.filler")

BENCH_RULES = """\
# Written by bench/pg_bench.py for the hoopd-policy path. The strict pack's plain-reads
# rule allows every statement the benchmark sends (bench.test.yaml pins that), so this
# file adds no allow rule: only what the path must mask.

rules:
  - name: bench-mask-abalance
    description: The column pgbench -S reads; pgbench does not check the value.
    action: mask
    columns: [pgbench_accounts.abalance]
    style: redact

  - name: bench-mask-filler
    description: A text column every row of the large-select result carries.
    action: mask
    columns: [pgbench_accounts.filler]
    style: redact
"""

# Each statement the benchmark sends through the path (pgbench's start-up query, its -S
# statement as the simple and the extended/prepared modes send it, large-select, and the
# checks), with the verdict it must get.
BENCH_CASES = """\
cases:
  - name: pgbench -S, simple mode
    sql: "SELECT abalance FROM pgbench_accounts WHERE aid = 123456;"
    connection: bench
    expect: allow
  - name: pgbench -S, extended and prepared modes
    sql: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
    connection: bench
    expect: allow
  - name: pgbench start-up (scale)
    sql: "select count(*) from pgbench_branches"
    connection: bench
    expect: allow
  - name: pgbench start-up (partitions)
    sql: >-
      select o.n, p.partstrat, pg_catalog.count(i.inhparent)
      from pg_catalog.pg_class as c
      join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace)
      cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true),
      n.nspname)) as o(n)
      left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid)
      left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent)
      where c.relname = 'pgbench_accounts' and o.n is not null
      group by 1, 2 order by 1 asc limit 1
    connection: bench
    expect: allow
  - name: large-select
    sql: "select * from pgbench_accounts"
    connection: bench
    expect: allow
  - name: smoke query
    sql: "select 1"
    connection: bench
    expect: allow
  - name: masking check
    sql: "select aid, abalance, filler from pgbench_accounts where aid = 1"
    connection: bench
    expect: allow
  - name: the packs are in force (destructive-sql)
    sql: "DELETE FROM pgbench_accounts"
    connection: bench
    expect: deny
    rule: delete-without-where
  - name: the packs are in force (strict)
    sql: "UPDATE pgbench_accounts SET abalance = 0 WHERE aid = 1"
    connection: bench
    expect: deny
    rule: null
"""


def write_policy(directory: Path) -> list[str]:
    """Write the directory; returns the names of its policy files."""
    directory.mkdir(mode=0o700)
    for pack in PACKS:
        found = sorted(
            p
            for p in (REPO / "policies" / pack).iterdir()
            if p.suffix in (".yaml", ".yml") and not p.name.endswith((".test.yaml", ".test.yml"))
        )
        if not found:
            raise BenchSetupError(f"policies/{pack} has no rule file")
        for source in found:
            if (directory / source.name).exists():
                raise BenchSetupError(f"policies/{pack}/{source.name}: name taken by another pack")
            shutil.copyfile(source, directory / source.name)
    (directory / "bench.yaml").write_text(BENCH_RULES)
    (directory / "bench.test.yaml").write_text(BENCH_CASES)
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".test.yaml"))


def check_policy(directory: Path) -> str:
    """``hoopd policy check`` and ``hoopd policy test`` on the directory; returns check's
    summary line, or raises with the command's whole output if either fails."""
    summary = ""
    for action in ("check", "test"):
        argv = [sys.executable, "-m", "hoopd", "policy", action, str(directory)]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=60, check=False, cwd=REPO
            )
        except subprocess.TimeoutExpired:
            raise BenchSetupError(f"hoopd policy {action} did not finish within 60 s") from None
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise BenchSetupError(
                f"the bench policy does not pass 'hoopd policy {action}' "
                f"(status {done.returncode}):\n"
                + "\n".join("    " + line for line in output.splitlines())
            )
        if action == "check":
            summary = output.splitlines()[-1] if output else ""
    return summary


# pgbench reads the masked column in every query mode and shows what it received
# (\shell runs sh: set -f keeps the marker's brackets from being read as a glob).
_SHOW_ABALANCE = (
    "SELECT abalance FROM pgbench_accounts WHERE aid = 1 \\gset\n"
    "\\shell set -f; echo got :abalance\n"
)


def _run(argv: list[str], leg: Leg, timeout: float, stdin: str | None = None) -> str:
    """The command's stdout; raises BenchSetupError if it fails or hangs."""
    try:
        done = subprocess.run(
            argv,
            env=leg.client_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchSetupError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise BenchSetupError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def masking_problem(leg: Leg, timeout: float = 30.0) -> str | None:
    """None if the leg masks: a psql read of one pgbench_accounts row gets the marker in
    both masked columns (and aid, which no rule names, unchanged), and pgbench, in each of
    its query modes, gets the marker for abalance. Otherwise what arrived instead."""
    sql = "select aid, abalance, filler from pgbench_accounts where aid = 1"
    expected = f"1|{REDACTED}|{REDACTED}"
    try:
        got = _run(
            ["psql", "-X", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql], leg, timeout
        )
        if got != expected:
            return (
                f"{leg.label} does not mask {', '.join(MASKED_COLUMNS)}: psql '{sql}' "
                f"returned {got!r}, expected {expected!r}"
            )
        for mode in PGBENCH_MODES:
            argv = ["pgbench", "-n", "-M", mode, "-c", "1", "-t", "1", "-f", "-"]
            got = _run(argv, leg, timeout, stdin=_SHOW_ABALANCE)
            if f"got {REDACTED}" not in got.splitlines():
                return (
                    f"{leg.label} does not mask pgbench_accounts.abalance for pgbench -M "
                    f"{mode}: it printed {got!r}"
                )
    except BenchSetupError as exc:
        return f"the masking check through {leg.label} failed: {exc}"
    return None
