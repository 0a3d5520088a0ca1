"""Turning runs into result rows: the median run, ratios to direct (and, for hoopd and
hoopd-policy, to trio-copy), the printed table, the targets, and bench/results/pg.json."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pg_workloads import LARGE_SELECT, Measurement

# Targets from the issue: printed next to the figures, never asserted.
TARGET_TPS_RATIO = 0.30  # hoopd at 8 clients, recording on
TARGET_TPS_CLIENTS = 8
TARGET_CPU_US = 100.0  # gateway CPU per statement
TARGET_COPY_RATIO = 0.80
TARGET_POLICY_TPS_RATIO = 0.30  # hoopd-policy at 8 clients
TARGET_POLICY_LARGE_SELECT_RATIO = 0.30  # hoopd-policy, large-select rows/s
# The paths whose rows also get a ratio to trio-copy.
GATEWAY_PATHS = ("hoopd", "hoopd-policy")
REFERENCE = (
    "measured earlier on this machine kind: direct ~26,900 TPS at 8 clients (-S), "
    "pgbouncer ~0.55x direct"
)


@dataclass
class Cell:
    """Every run of one configuration (leg, mode, clients), and why any failed."""

    path: str
    label: str
    durability: str | None
    mode: str
    clients: int
    runs: list[Measurement] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def is_copy(self) -> bool:
        return self.mode.startswith("copy")

    @property
    def is_pgbench(self) -> bool:
        return not self.is_copy and self.mode != LARGE_SELECT

    def throughput(self, run: Measurement | None) -> float | None:
        """What the mode is compared by: TPS (pgbench), MB/s (COPY) or rows/s
        (large-select)."""
        if run is None:
            return None
        if self.is_copy:
            return run.mb_per_s
        return run.tps if self.is_pgbench else run.rows_per_s

    def median(self) -> Measurement | None:
        """The run with the median throughput (the lower one of an even count), so a
        row's figures all come from one run."""
        if not self.runs:
            return None
        ranked = sorted(self.runs, key=lambda m: self.throughput(m) or 0.0)
        return ranked[(len(ranked) - 1) // 2]


@dataclass(frozen=True)
class Row:
    cell: Cell
    run: Measurement | None
    ratio: float | None
    # hoopd and hoopd-policy rows only: throughput over trio-copy's for the same mode and
    # client count.
    ratio_to_trio_copy: float | None = None

    @property
    def cpu_us_per_statement(self) -> float | None:
        if self.run is None or self.run.cpu_seconds is None:
            return None
        return self.run.cpu_seconds * 1e6 / self.run.statements

    @property
    def cpu_percent(self) -> float | None:
        if self.run is None or self.run.cpu_seconds is None:
            return None
        return 100 * self.run.cpu_seconds / self.run.seconds


def _ratio(cell: Cell, run: Measurement | None, base: Measurement | None) -> float | None:
    mine, theirs = cell.throughput(run), cell.throughput(base)
    return mine / theirs if mine is not None and theirs else None


def build_rows(cells: Iterable[Cell]) -> list[Row]:
    cells = list(cells)
    direct = {(c.mode, c.clients): c.median() for c in cells if c.path == "direct"}
    trio_copy = {(c.mode, c.clients): c.median() for c in cells if c.path == "trio-copy"}
    rows = []
    for cell in cells:
        run, key = cell.median(), (cell.mode, cell.clients)
        floor = _ratio(cell, run, trio_copy.get(key)) if cell.path in GATEWAY_PATHS else None
        rows.append(Row(cell, run, _ratio(cell, run, direct.get(key)), floor))
    return rows


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def to_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One object per measured row (failed configurations are left out)."""
    out = []
    for row in rows:
        if row.run is None:
            continue
        out.append(
            {
                "path": row.cell.path,
                "mode": row.cell.mode,
                "clients": row.cell.clients,
                "tps": _round(row.run.tps, 1),
                "latency_ms": _round(row.run.latency_ms, 3),
                "ratio_to_direct": _round(row.ratio, 3),
                "cpu_us_per_statement": _round(row.cpu_us_per_statement, 1),
                "mb_per_s": _round(row.run.mb_per_s, 1),
                "durability": row.cell.durability,
                "ratio_to_trio_copy": _round(row.ratio_to_trio_copy, 3),
                "rows_per_s": _round(row.run.rows_per_s, 0),
            }
        )
    return out


def write_json(rows: Sequence[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(to_json(rows), indent=2) + "\n")
    os.replace(partial, path)


def _met(ratio: float, target: float) -> str:
    return f"x>={target:.2f} {'met' if ratio >= target else 'MISSED'}"


def _target_note(row: Row) -> str:
    cell, ratio = row.cell, row.ratio
    if row.run is None:
        return ""
    if cell.path == "hoopd-policy":
        if ratio is None:
            return ""
        if cell.mode == LARGE_SELECT:
            return _met(ratio, TARGET_POLICY_LARGE_SELECT_RATIO)
        if cell.is_pgbench and cell.clients == TARGET_TPS_CLIENTS:
            return _met(ratio, TARGET_POLICY_TPS_RATIO)
        return ""
    # hoopd: the targets from the issue (none for large-select).
    if cell.path != "hoopd" or cell.mode == LARGE_SELECT:
        return ""
    notes = []
    if cell.is_copy:
        if ratio is not None:
            notes.append(_met(ratio, TARGET_COPY_RATIO))
        return "; ".join(notes)
    if cell.clients == TARGET_TPS_CLIENTS and ratio is not None:
        notes.append(_met(ratio, TARGET_TPS_RATIO))
    cpu = row.cpu_us_per_statement
    if cpu is not None:
        notes.append(f"cpu<={TARGET_CPU_US:.0f} {'met' if cpu <= TARGET_CPU_US else 'MISSED'}")
    return "; ".join(notes)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


COLUMNS = (
    ("path", "<", 20),
    ("mode", "<", 12),
    ("clients", ">", 7),
    ("TPS", ">", 9),
    ("lat ms", ">", 9),
    ("MB/s", ">", 7),
    ("rows/s", ">", 9),
    ("x direct", ">", 8),
    ("x trio-copy", ">", 11),
    ("CPU us/stmt", ">", 11),
    ("CPU %", ">", 6),
    ("target", "<", 0),
)


def _line(values: Sequence[str]) -> str:
    parts = [f"{v:{align}{width}}" for v, (_, align, width) in zip(values, COLUMNS, strict=True)]
    return "  ".join(parts).rstrip()


def format_table(rows: Sequence[Row]) -> str:
    lines = [_line([name for name, _, _ in COLUMNS])]
    lines.append("-" * len(lines[0]) + "-" * 24)
    previous_group: tuple[str, int] | None = None
    for row in rows:
        group = (row.cell.mode, row.cell.clients)
        if previous_group is not None and group != previous_group:
            lines.append("")
        previous_group = group
        run = row.run
        if run is None:
            values = [row.cell.label, row.cell.mode, str(row.cell.clients), "FAILED"]
            values += [""] * (len(COLUMNS) - len(values))
            lines.append(_line(values))
            continue
        lines.append(
            _line(
                [
                    row.cell.label,
                    row.cell.mode,
                    str(row.cell.clients),
                    _fmt(run.tps, ",.0f"),
                    _fmt(run.latency_ms, ",.3f" if run.tps is not None else ",.0f"),
                    _fmt(run.mb_per_s, ".1f"),
                    _fmt(run.rows_per_s, ",.0f"),
                    _fmt(row.ratio, ".2f"),
                    _fmt(row.ratio_to_trio_copy, ".2f") if row.cell.path in GATEWAY_PATHS else "",
                    _fmt(row.cpu_us_per_statement, ",.1f" if run.tps is not None else ",.0f"),
                    _fmt(row.cpu_percent, ".0f"),
                    _target_note(row),
                ]
            )
        )
    return "\n".join(lines)
