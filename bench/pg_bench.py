"""PostgreSQL benchmark: the target directly vs pgbouncer (session mode) vs trio-copy
(a bare trio byte-copy proxy, the floor for any trio proxy) vs hoopd (recording on) vs
hoopd-policy (the same, plus a policy directory that judges every statement and masks
columns), in one run, on 127.0.0.1 with sslmode=disable on every client leg.

    make bench            # or: .venv/bin/python bench/pg_bench.py

Workloads: ``pgbench -n -S`` with 1, 8 and 32 clients in the simple, extended and
prepared query modes; a ~100 MB ``COPY ... FROM STDIN`` and ``COPY ... TO STDOUT``
through psql's ``\\copy`` (not on hoopd-policy); and large-select, one psql
``select * from pgbench_accounts`` (1,000,000 rows). Prints a table and writes the same
rows to bench/results/pg.json. bench/README.md explains the figures.

Environment: BENCH_SECONDS (per pgbench run, default 10), BENCH_REPEATS (runs per
configuration, median reported, default 1), BENCH_COPY_MB (default 100),
BENCH_POWER_LOSS=1 (adds hoopd with durability = "power-loss" at 8 clients),
BENCH_PATHS (comma list of the paths to measure, default all; direct always runs).

Exit status: 0 when every configuration was measured, 1 when a path or a run failed
(the rest is still measured, printed and written), 2 for bad settings or when the
target itself could not be set up.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (bench/ is sys.path[0]): make the checkout root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pg_policy import MASKED_COLUMNS, check_policy, masking_problem, write_policy
from bench.pg_report import REFERENCE, Cell, build_rows, format_table, write_json
from bench.pg_services import (
    CLIENT_SSLMODE,
    BenchSetupError,
    Hoopd,
    Leg,
    Pgbouncer,
    TrioCopy,
    smoke_query,
    start_cluster,
)
from bench.pg_workloads import (
    COPY_MODES,
    LARGE_SELECT,
    LARGE_SELECT_ROWS,
    PGBENCH_MODES,
    SCALE,
    Measurement,
    RunFailed,
    initialise_pgbench,
    prepare_copy,
    reset_copy_target,
    run_copy,
    run_large_select,
    run_pgbench,
)
from hoopd.pgcluster import ClusterError, LocalCluster, find_bindir

PATHS = ("direct", "pgbouncer", "trio-copy", "hoopd", "hoopd-policy")
CLIENT_COUNTS = (1, 8, 32)
POWER_LOSS_CLIENTS = 8
WARMUP_SECONDS = 2
COPY_TIMEOUT_SECONDS = 300.0
RESULTS = Path(__file__).resolve().parent / "results" / "pg.json"

# How to stop everything this run starts, registered before each start so that an
# interrupted start is cleaned up too; called in reverse order on the way out.
STOPPERS: list[Callable[[], None]] = []


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    seconds: int
    repeats: int
    copy_mb: float
    power_loss: bool
    paths: tuple[str, ...] = PATHS

    @classmethod
    def from_env(cls) -> Settings:
        def number(name: str, default: str, kind: Callable[[str], float]) -> float:
            text = os.environ.get(name, default)
            try:
                value = kind(text)
            except ValueError:
                raise SettingsError(f"{name}={text!r} is not a number") from None
            if value <= 0:
                raise SettingsError(f"{name}={text!r} must be positive")
            return value

        power_loss = os.environ.get("BENCH_POWER_LOSS", "0")
        if power_loss not in ("0", "1", ""):
            raise SettingsError(f"BENCH_POWER_LOSS={power_loss!r}: use 1 to enable, 0 to not")
        listed = [p.strip() for p in os.environ.get("BENCH_PATHS", "").split(",") if p.strip()]
        unknown = [p for p in listed if p not in PATHS]
        if unknown:
            raise SettingsError(
                f"BENCH_PATHS: unknown path {', '.join(unknown)} (known: {', '.join(PATHS)})"
            )
        # direct always runs: the data is loaded through it and every ratio is to it.
        paths = tuple(p for p in PATHS if not listed or p in listed or p == "direct")
        if power_loss == "1" and "hoopd" not in paths:
            raise SettingsError("BENCH_POWER_LOSS=1 needs the hoopd path (BENCH_PATHS)")
        return cls(
            seconds=int(number("BENCH_SECONDS", "10", int)),
            repeats=int(number("BENCH_REPEATS", "1", int)),
            copy_mb=number("BENCH_COPY_MB", "100", float),
            power_loss=power_loss == "1",
            paths=paths,
        )


@dataclass
class Route:
    """A started leg, and how to tell that its server is still running."""

    leg: Leg
    alive: Callable[[], bool]
    dead_reason: str | None = None


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float:
    """The 1-minute load average: how many other runnable processes compete for the CPUs."""
    return os.getloadavg()[0]


def warn_if_busy() -> None:
    """Checked before anything starts (afterwards the load would be the benchmark's own)."""
    load, cpus = load_average(), len(os.sched_getaffinity(0))
    print(f"load average before starting: {load:.2f} on {cpus} CPUs", flush=True)
    if load > cpus / 2:
        print(
            f"WARNING: the machine is busy (load {load:.2f}, {cpus} CPUs); "
            "other processes compete with it, so the figures are less reliable",
            file=sys.stderr,
            flush=True,
        )


def print_machine(settings: Settings, bindir: str) -> None:
    usable = len(os.sched_getaffinity(0))
    print("machine")
    print(f"  nproc              {usable} (os.cpu_count {os.cpu_count()})")
    print(f"  cpu                {_cpu_model()}")
    print(f"  kernel             {platform.system()} {platform.release()}")
    print(f"  python             {platform.python_version()} ({sys.executable})")
    print(f"  postgres           {_version([f'{bindir}/postgres', '--version'])}")
    print(f"  pgbench            {_version(['pgbench', '--version'])}")
    print(f"  pgbouncer          {_version(['pgbouncer', '--version'])}")
    print("settings")
    print(f"  paths              {', '.join(settings.paths)}")
    print(f"  pgbench            -n -S -T {settings.seconds}, -j min(clients, nproc)")
    print(f"  data               pgbench -i -s {SCALE}, once, directly")
    print(f"  repeats            {settings.repeats} (median run reported)")
    print(f"  copy               ~{settings.copy_mb:g} MB, text format, one psql \\copy per run")
    print(
        f"  TLS                sslmode={CLIENT_SSLMODE} on every client leg (plaintext on "
        "127.0.0.1); pgbouncer and hoopd reach PostgreSQL in plaintext too (hoopd tls=disable), "
        "trio-copy forwards the client's own bytes"
    )
    print(f"  large-select       psql, select * from pgbench_accounts ({LARGE_SELECT_ROWS:,} rows)")
    print('  recording          on (hoopd durability = "process-crash"', end="")
    print(', plus "power-loss" at 8 clients)' if settings.power_loss else ")")
    if "hoopd-policy" in settings.paths:
        print(
            "  hoopd-policy       hoopd + [policy] directory: policies/destructive-sql and "
            f"policies/strict, plus mask rules (redact) on {', '.join(MASKED_COLUMNS)}"
        )
    print(flush=True)


def start_proxy(proxy: Pgbouncer | TrioCopy, name: str, errors: list[str]) -> Route | None:
    """Start pgbouncer or trio-copy and check it with ``select 1``; None (and the reason
    in ``errors``) if either fails."""
    STOPPERS.append(proxy.stop)
    try:
        leg = proxy.start()
    except BenchSetupError as exc:
        errors.append(f"{name} path skipped: {exc}")
        return None
    problem = smoke_query(leg)
    if problem is not None:
        proxy.stop()
        # trio-copy's stderr names a refused upstream connect; psql only sees a closed socket.
        detail = f"\n{proxy.stderr_tail()}" if isinstance(proxy, TrioCopy) else ""
        errors.append(f"{name} path skipped: {problem}{detail}")
        return None
    proc = proxy.process
    return Route(leg, lambda: proc is not None and proc.poll() is None)


def start_hoopd(
    root: Path,
    pg_port: int,
    password: str,
    durability: str,
    errors: list[str],
    policy_dir: Path | None = None,
) -> tuple[Route, Hoopd] | None:
    """Start hoopd and check it with ``select 1``; with a policy, also check that it
    masks (see bench.pg_policy.masking_problem)."""
    gateway = Hoopd(root, pg_port, password, durability, policy_dir)
    name = f"{gateway.path} ({durability})"
    STOPPERS.append(gateway.stop)
    try:
        leg = gateway.start()
    except BenchSetupError as exc:
        errors.append(f"{name} path skipped: {exc}")
        return None
    problem = smoke_query(leg)
    if problem is None and policy_dir is not None:
        problem = masking_problem(leg)
    if problem is not None:
        errors.append(f"{name} path skipped: {problem}\n{gateway.stderr_tail()}")
        gateway.stop()
        return None
    proc = gateway.process
    return Route(leg, lambda: proc is not None and proc.poll() is None), gateway


def measure(
    route: Route, cell: Cell, run: Callable[[], Measurement], progress: str, errors: list[str]
) -> None:
    if route.dead_reason is not None:
        cell.errors.append(route.dead_reason)
        print(f"{progress} skipped ({route.dead_reason})", flush=True)
        return
    try:
        result = run()
    except RunFailed as exc:
        cell.errors.append(str(exc))
        errors.append(f"{cell.label} {cell.mode} clients={cell.clients}: {exc}")
        print(f"{progress} FAILED", flush=True)
        if not route.alive():
            route.dead_reason = f"{cell.label} exited during the run"
            errors.append(route.dead_reason)
        return
    cell.runs.append(result)
    if result.tps is not None:
        parts = [f"{result.tps:,.0f} tps"]
    elif result.mb_per_s is not None:
        parts = [f"{result.mb_per_s:.1f} MB/s"]
    else:
        parts = [f"{result.rows_per_s or 0:,.0f} rows/s"]
    parts.append(f"{result.latency_ms:,.3f} ms")
    if result.cpu_seconds is not None:
        parts.append(f"{result.cpu_seconds * 1e6 / result.statements:,.1f} us/stmt")
    print(f"{progress} {', '.join(parts)}", flush=True)


def run_benchmark(settings: Settings, root: Path, errors: list[str]) -> list[Cell]:
    policy_dir = None
    if "hoopd-policy" in settings.paths:
        # Checked before anything starts: a policy hoopd would refuse is a setup error.
        policy_dir = root / "policy"
        files = write_policy(policy_dir)
        print(f"policy for hoopd-policy: {', '.join(files)}")
        print(f"  {check_policy(policy_dir)}; its test cases pass", flush=True)
    cluster = LocalCluster(root / "pg")
    STOPPERS.append(cluster.stop)
    password = start_cluster(cluster, root / "postgresql.log")
    direct = Route(Leg("direct", "direct", cluster.port, password), lambda: True)
    problem = smoke_query(direct.leg)
    if problem is not None:
        raise BenchSetupError(problem)

    print(f"pgbench -i -s {SCALE} (direct) ...", flush=True)
    print(f"  done in {initialise_pgbench(cluster, direct.leg):.1f} s", flush=True)
    data_file = root / "copy.data"
    started = time.monotonic()
    rows = prepare_copy(cluster, direct.leg, data_file, settings.copy_mb)
    size_mb = data_file.stat().st_size / 1e6
    print(f"COPY data: {rows:,} rows, {size_mb:.1f} MB ({time.monotonic() - started:.1f} s)")

    routes = [direct]
    for proxy, name in (
        (Pgbouncer(root, cluster.port, password), "pgbouncer"),
        (TrioCopy(root, cluster.port, password), "trio-copy"),
    ):
        if name not in settings.paths:
            continue
        started_proxy = start_proxy(proxy, name, errors)
        if started_proxy is not None:
            routes.append(started_proxy)
    gateways: list[Hoopd] = []
    hoopds: list[tuple[str, Path | None]] = []
    if "hoopd" in settings.paths:
        hoopds.append(("process-crash", None))
    if settings.power_loss:
        hoopds.append(("power-loss", None))
    if policy_dir is not None:
        hoopds.append(("process-crash", policy_dir))
    for durability, policy in hoopds:
        started_gw = start_hoopd(root, cluster.port, password, durability, errors, policy)
        if started_gw is not None:
            routes.append(started_gw[0])
            gateways.append(started_gw[1])
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr, flush=True)

    print(f"warm-up: pgbench -S -c 8 -T {WARMUP_SECONDS} on each path", flush=True)
    for route in list(routes):
        try:
            run_pgbench(route.leg, "simple", 8, WARMUP_SECONDS)
        except RunFailed as exc:
            message = f"{route.leg.label} path skipped: warm-up failed: {exc}"
            errors.append(message)
            print(f"ERROR: {message}", file=sys.stderr, flush=True)
            if route is direct:
                raise BenchSetupError(message) from None
            routes.remove(route)

    def pgbench_routes(clients: int) -> list[Route]:
        return [
            p
            for p in routes
            if p.leg.durability in (None, "process-crash") or clients == POWER_LOSS_CLIENTS
        ]

    cells: dict[tuple[str, str, int], Cell] = {}

    def cell(route: Route, mode: str, clients: int) -> Cell:
        key = (route.leg.label, mode, clients)
        if key not in cells:
            leg = route.leg
            cells[key] = Cell(leg.path, leg.label, leg.durability, mode, clients)
        return cells[key]

    # One run per path: the power-loss hoopd only runs pgbench at 8 clients. No COPY on
    # hoopd-policy: the strict pack refuses copy-in, and hoopd refuses COPY TO STDOUT where
    # column mask rules apply (COPY names no columns).
    large_select_routes = [p for p in routes if p.leg.durability in (None, "process-crash")]
    copy_routes = [p for p in large_select_routes if p.leg.path != "hoopd-policy"]
    pgbench_runs = sum(len(pgbench_routes(c)) for c in CLIENT_COUNTS) * len(PGBENCH_MODES)
    other_runs = len(copy_routes) * len(COPY_MODES) + len(large_select_routes)
    total = settings.repeats * (pgbench_runs + other_runs)
    estimate = settings.repeats * pgbench_runs * (settings.seconds + 0.5) / 60
    print(f"{total} runs; pgbench alone takes about {estimate:.1f} min", flush=True)
    done = 0
    for repeat in range(settings.repeats):
        for mode in PGBENCH_MODES:
            for clients in CLIENT_COUNTS:
                for route in pgbench_routes(clients):
                    done += 1
                    target = cell(route, mode, clients)
                    progress = f"[{done}/{total}] {route.leg.label} {mode} c={clients}:"

                    def one_pgbench(
                        leg: Leg = route.leg, m: str = mode, c: int = clients
                    ) -> Measurement:
                        return run_pgbench(leg, m, c, settings.seconds)

                    measure(route, target, one_pgbench, progress, errors)
        for mode in COPY_MODES:
            for route in copy_routes:
                done += 1
                target = cell(route, mode, 1)
                progress = f"[{done}/{total}] {route.leg.label} {mode}:"
                if mode == "copy-in":
                    reset_copy_target(cluster)

                def one_copy(leg: Leg = route.leg, m: str = mode) -> Measurement:
                    return run_copy(leg, m, data_file, rows, COPY_TIMEOUT_SECONDS)

                measure(route, target, one_copy, progress, errors)
        for route in large_select_routes:
            done += 1
            target = cell(route, LARGE_SELECT, 1)
            progress = f"[{done}/{total}] {route.leg.label} {LARGE_SELECT}:"

            def one_select(leg: Leg = route.leg) -> Measurement:
                return run_large_select(leg, COPY_TIMEOUT_SECONDS)

            measure(route, target, one_select, progress, errors)
        if settings.repeats > 1:
            print(f"repeat {repeat + 1}/{settings.repeats} done", flush=True)

    for gateway in gateways:
        print(
            f"{gateway.path} ({gateway.durability}) recorded "
            f"{gateway.recorded_bytes() / 1e6:.1f} MB (recording was on)"
        )
    order = {p.leg.label: i for i, p in enumerate(routes)}
    mode_order = {m: i for i, m in enumerate((*PGBENCH_MODES, *COPY_MODES, LARGE_SELECT))}
    return sorted(cells.values(), key=lambda c: (mode_order[c.mode], c.clients, order[c.label]))


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"pg_bench: {exc}", file=sys.stderr)
        return 2
    for tool in ("psql", "pgbench"):
        if shutil.which(tool) is None:
            print(f"pg_bench: {tool} not found (install postgresql-client)", file=sys.stderr)
            return 2

    try:
        bindir = str(find_bindir())
    except ClusterError as exc:
        print(f"pg_bench: {exc}", file=sys.stderr)
        return 2
    print_machine(settings, bindir)
    warn_if_busy()

    root = Path(tempfile.mkdtemp(prefix="hoopd-bench-"))
    root.chmod(0o755)  # PostgreSQL and pgbouncer run as another user and must traverse it
    errors: list[str] = []
    started = time.monotonic()
    try:
        cells = run_benchmark(settings, root, errors)
    except (BenchSetupError, ClusterError, RunFailed) as exc:
        print(f"pg_bench: cannot benchmark: {exc}", file=sys.stderr)
        return 2
    finally:
        for stop in reversed(STOPPERS):
            stop()
        shutil.rmtree(root, ignore_errors=True)

    rows = build_rows(cells)
    print()
    print(
        f"results (sslmode={CLIENT_SSLMODE} on every client leg; median of "
        f"{settings.repeats} run(s); ratio = TPS, MB/s (COPY) or rows/s (large-select) over "
        "direct's; x trio-copy = the same over trio-copy's, on hoopd and hoopd-policy rows; "
        "CPU = the proxy process's utime+stime over the run; COPY and large-select rows are "
        "one statement)"
    )
    print(format_table(rows))
    print()
    print(
        "targets (not asserted): hoopd at 8 clients >= 0.30x direct TPS with recording on, "
        "gateway CPU <= 100 us per statement, COPY >= 0.80x direct MB/s; hoopd-policy at "
        "8 clients >= 0.30x direct TPS, large-select >= 0.30x direct rows/s"
    )
    print(f"reference: {REFERENCE}")
    write_json(rows, RESULTS)
    print(f"wrote {RESULTS} ({sum(1 for r in rows if r.run is not None)} rows)")
    print(f"total time {(time.monotonic() - started) / 60:.1f} min")
    if errors:
        print("\nproblems:", file=sys.stderr)
        for message in errors:
            print("  - " + message.replace("\n", "\n    "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
