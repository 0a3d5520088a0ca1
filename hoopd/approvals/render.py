"""Approval requests as text for a terminal. Request text goes through
:func:`~hoopd.approvals.text.shown`, so a command cannot disguise itself."""

from __future__ import annotations

from typing import Final

from hoopd.approvals.model import ApprovalRequest
from hoopd.approvals.text import one_line, shown, time_left, utc

_COMMAND_WIDTH: Final = 60
_HEADER: Final = ("ID", "REQUESTER", "CONNECTION", "RULE", "LEFT", "APPROVALS", "COMMAND")


def request_table(requests: list[ApprovalRequest], now: float) -> str:
    """One row per request: id, who, where, rule, time left, approvals so far, and the
    command on one line (cut to 60 characters, with a note saying how to see it all)."""
    rows = [_HEADER]
    any_cut = False
    for r in requests:
        command, cut = one_line(r.command, _COMMAND_WIDTH)
        any_cut = any_cut or cut
        rows.append(
            (
                r.id,
                shown(r.requester),
                shown(r.connection),
                shown(r.rule),
                time_left(r.deadline - now),
                f"{r.approvals}/{r.min_approvals}",
                command,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    if any_cut:
        lines.append("")
        lines.append("(commands cut short; `hoopd approvals ID --config FILE` shows one in full)")
    return "\n".join(lines)


def request_details(r: ApprovalRequest, now: float) -> str:
    """Everything about one request, the command in full and exactly as it will run
    (apart from escaped invisible characters)."""
    actors = f" (via {', '.join(shown(a) for a in r.actor_chain)})" if r.actor_chain else ""
    left = f" ({time_left(r.deadline - now)} left)" if r.status == "pending" else ""
    lines = [
        f"request     {r.id}",
        f"status      {shown(r.resolution) if r.resolution else r.status}",
        f"requester   {shown(r.requester)}{actors}"
        f" [{', '.join(shown(g) for g in r.requester_groups)}]",
        f"connection  {shown(r.connection)} ({shown(r.protocol)}), session {shown(r.session_id)}",
        f"rule        {shown(r.rule)}",
        f"approvers   {r.min_approvals} from {', '.join(shown(g) for g in r.approver_groups)}",
        f"created     {utc(r.created_at)}",
        f"deadline    {utc(r.deadline)}{left}",
        f"digest      {r.command_digest}",
    ]
    for d in r.decisions:
        reason = f": {shown(d.reason)}" if d.reason else ""
        lines.append(f"decision    {d.decision} by {shown(d.approver)} at {utc(d.at)}{reason}")
    lines.append("command:")
    lines.extend("    " + line for line in shown(r.command).split("\n"))
    return "\n".join(lines)
