"""Turning runs into result rows: the median run, ratios to direct (and, for hoopd, to
trio-copy), the printed table, the targets, and bench/results/pg.json."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pg_workloads import Measurement

# Targets from the issue: printed next to the figures, never asserted.
TARGET_TPS_RATIO = 0.30  # hoopd at 8 clients, recording on
TARGET_TPS_CLIENTS = 8
TARGET_CPU_US = 100.0  # gateway CPU per statement
TARGET_COPY_RATIO = 0.80
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

    def median(self) -> Measurement | None:
        """The run with the median throughput (the lower one of an even count), so a
        row's figures all come from one run."""
        if not self.runs:
            return None
        ranked = sorted(self.runs, key=lambda m: (m.mb_per_s if self.is_copy else m.tps) or 0.0)
        return ranked[(len(ranked) - 1) // 2]


@dataclass(frozen=True)
class Row:
    cell: Cell
    run: Measurement | None
    ratio: float | None
    # hoopd rows only: throughput over trio-copy's for the same mode and client count.
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


def _throughput(run: Measurement | None, copy: bool) -> float | None:
    if run is None:
        return None
    return run.mb_per_s if copy else run.tps


def _ratio(cell: Cell, run: Measurement | None, base: Measurement | None) -> float | None:
    mine, theirs = _throughput(run, cell.is_copy), _throughput(base, cell.is_copy)
    return mine / theirs if mine is not None and theirs else None


def build_rows(cells: Iterable[Cell]) -> list[Row]:
    cells = list(cells)
    direct = {(c.mode, c.clients): c.median() for c in cells if c.path == "direct"}
    trio_copy = {(c.mode, c.clients): c.median() for c in cells if c.path == "trio-copy"}
    rows = []
    for cell in cells:
        run, key = cell.median(), (cell.mode, cell.clients)
        floor = _ratio(cell, run, trio_copy.get(key)) if cell.path == "hoopd" else None
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
            }
        )
    return out


def write_json(rows: Sequence[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(to_json(rows), indent=2) + "\n")
    os.replace(partial, path)


def _target_note(row: Row) -> str:
    if row.cell.path != "hoopd" or row.run is None:
        return ""
    notes = []
    if row.cell.is_copy:
        if row.ratio is not None:
            met = row.ratio >= TARGET_COPY_RATIO
            notes.append(f"x>={TARGET_COPY_RATIO:.2f} {'met' if met else 'MISSED'}")
        return "; ".join(notes)
    if row.cell.clients == TARGET_TPS_CLIENTS and row.ratio is not None:
        met = row.ratio >= TARGET_TPS_RATIO
        notes.append(f"x>={TARGET_TPS_RATIO:.2f} {'met' if met else 'MISSED'}")
    cpu = row.cpu_us_per_statement
    if cpu is not None:
        notes.append(f"cpu<={TARGET_CPU_US:.0f} {'met' if cpu <= TARGET_CPU_US else 'MISSED'}")
    return "; ".join(notes)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


COLUMNS = (
    ("path", "<", 20),
    ("mode", "<", 9),
    ("clients", ">", 7),
    ("TPS", ">", 9),
    ("lat ms", ">", 9),
    ("MB/s", ">", 7),
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
                    _fmt(row.ratio, ".2f"),
                    "" if row.cell.path != "hoopd" else _fmt(row.ratio_to_trio_copy, ".2f"),
                    _fmt(row.cpu_us_per_statement, ",.1f" if run.tps is not None else ",.0f"),
                    _fmt(row.cpu_percent, ".0f"),
                    _target_note(row),
                ]
            )
        )
    return "\n".join(lines)
