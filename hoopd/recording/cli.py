"""``hoopd sessions``, ``hoopd replay`` and ``hoopd audit verify|reindex``.

Wired into the ``hoopd`` command by :func:`register`. Every command only reads
the data dir (``reindex`` rewrites the index, never the journal) and works
while a gateway is recording.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from hoopd.recording import render
from hoopd.recording.asciicast import NoTerminal, asciicast_lines
from hoopd.recording.datadir import DataDirError, resolve_data_dir
from hoopd.recording.frames import Record
from hoopd.recording.index import index_path
from hoopd.recording.lock import LockHeld
from hoopd.recording.reader import find_session, list_sessions, read_session
from hoopd.recording.reindex import ReindexRefused, reindex
from hoopd.recording.segments import journal_dir
from hoopd.recording.verify import Break, SessionChecker, VerifyReport, verify

EXIT_OK = 0
EXIT_PROBLEM = 1  # verification found breaks; no such session; refused
EXIT_USAGE = 2  # bad configuration (argparse uses 2 for bad arguments too)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``sessions``, ``replay`` and ``audit`` to the ``hoopd`` command."""
    sessions = subparsers.add_parser("sessions", help="list recorded sessions")
    _location(sessions)
    sessions.add_argument(
        "--json", action="store_true", help="one JSON object per session (per root, with --tree)"
    )
    sessions.add_argument(
        "--tree",
        action="store_true",
        help="group sessions by who started whom: root subjects, then each delegated actor",
    )
    sessions.set_defaults(func=_with_data_dir(_sessions))

    replay = subparsers.add_parser("replay", help="show what a session did, in order")
    replay.add_argument("session_id", metavar="ID", help="session id (or a unique prefix)")
    _location(replay)
    replay.add_argument("--json", action="store_true", help="one JSON object per record")
    replay.add_argument(
        "--format",
        choices=("text", "json", "asciicast"),
        help="text (default), json (as --json), or asciicast: a terminal channel as an"
        " asciicast v2 file for asciinema",
    )
    replay.add_argument(
        "--channel",
        type=int,
        metavar="N",
        help="with --format asciicast: the channel (default: the first with a terminal)",
    )
    replay.set_defaults(func=_with_data_dir(_replay))

    audit = subparsers.add_parser("audit", help="check or rebuild recordings")
    actions = audit.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    check = actions.add_parser("verify", help="check every recording for edits and deletions")
    _location(check)
    check.set_defaults(func=_with_data_dir(_verify))
    rebuild = actions.add_parser("reindex", help="rebuild the session index from the journal")
    _location(rebuild)
    rebuild.add_argument(
        "--force", action="store_true", help="rebuild even if verification finds problems"
    )
    rebuild.set_defaults(func=_with_data_dir(_reindex))


def _location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="the gateway's data directory")
    parser.add_argument(
        "--config", metavar="FILE", help="take the data directory from this configuration file"
    )


Command = Callable[[argparse.Namespace, Path, TextIO], int]


def _with_data_dir(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            data_dir = resolve_data_dir(
                getattr(args, "data_dir", None), getattr(args, "config", None)
            )
        except DataDirError as exc:
            print(f"hoopd: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            return command(args, data_dir, sys.stdout)
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, and keep Python's
            # final flush of stdout from failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_PROBLEM
        except OSError as exc:  # unreadable recordings: say which, without a traceback
            print(f"hoopd: {exc}", file=sys.stderr)
            return EXIT_PROBLEM

    return run


def _sessions(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    sessions = list_sessions(data_dir)
    if sessions and args.tree:
        roots = render.session_tree(sessions)
        lines = render.tree_json(roots) if args.json else render.tree_lines(roots)
        for line in lines:
            print(line, file=out)
    elif args.json:
        for summary in sessions:
            print(render.session_json(summary), file=out)
    elif sessions:
        for line in render.session_table(sessions):
            print(line, file=out)
    else:
        print(f"no recorded sessions in {data_dir}", file=sys.stderr)
    return EXIT_OK


def _replay(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    try:
        summary = find_session(data_dir, args.session_id)
    except LookupError as exc:
        print(f"hoopd: {exc.args[0]}", file=sys.stderr)
        return EXIT_PROBLEM
    checker = SessionChecker()
    problems: list[Break] = []
    last_read = -1

    def checked() -> Iterator[Record]:
        nonlocal last_read
        for record in read_session(data_dir, summary.session_id):
            problems.extend(checker.check(record))
            last_read = max(last_read, record.seq)
            yield record

    form = args.format or ("json" if args.json else "text")
    if form == "asciicast":
        try:
            title = f"hoopd session {summary.session_id}"
            lines = list(asciicast_lines(checked(), args.channel, title))
        except NoTerminal as exc:
            print(f"hoopd: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        for line in lines:
            print(line, file=out)
    elif form == "json":
        for record in checked():
            print(render.record_json(record), file=out)
    else:
        print(render.replay_header(summary), file=out)
        for line in render.replay_lines(checked()):
            print(line, file=out)
    for problem in problems:
        print(f"warning: {problem} (see hoopd audit verify)", file=sys.stderr)
    if summary.last_seq is not None and last_read < summary.last_seq:
        # The chain checks above cannot see records missing from the end: the index can.
        print(
            f"warning: the index lists records up to seq {summary.last_seq}, the last one"
            f" readable is seq {last_read} (see hoopd audit verify)",
            file=sys.stderr,
        )
    return EXIT_OK


def _verify(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    if not journal_dir(data_dir).is_dir():
        # Most likely a wrong path: "all chains intact" would be misleading.
        print(f"hoopd: no journal in {data_dir}", file=sys.stderr)
        return EXIT_USAGE
    report = verify(data_dir)
    for line in verify_lines(report):
        print(line, file=out)
    return EXIT_OK if report.ok else EXIT_PROBLEM


def verify_lines(report: VerifyReport) -> list[str]:
    """What ``hoopd audit verify`` prints for ``report``."""
    lines = [f"BROKEN {problem}" for problem in report.breaks]
    lines += [f"note: {note}" for note in report.notes]
    if report.unterminated:
        lines.append(
            f"{len(report.unterminated)} unterminated (gateway stopped without ending them): "
            + ", ".join(report.unterminated)
        )
    if report.active:
        lines.append(f"{len(report.active)} active: " + ", ".join(report.active))
    counts = f"{report.sessions} sessions, {report.records} records"
    if report.ok:
        lines.append(f"{counts}, all chains intact")
    else:
        lines.append(f"{counts}, {len(report.breaks)} problems found")
    return lines


def _reindex(args: argparse.Namespace, data_dir: Path, out: TextIO) -> int:
    try:
        count = reindex(data_dir, force=args.force)
    except LockHeld:
        print(f"hoopd: a gateway is recording to {data_dir}; stop it first", file=sys.stderr)
        return EXIT_PROBLEM
    except ReindexRefused as refused:
        for line in verify_lines(refused.report):
            print(line, file=out)
        print(
            "hoopd: not rebuilding the index: it is evidence of the problems above"
            " (--force rebuilds anyway)",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    except sqlite3.Error as exc:
        # The file there is not an index SQLite can rewrite (garbage, another
        # schema): deleting it is for a person to decide, as it may be evidence.
        print(
            render.clean(
                f"hoopd: cannot rebuild the index {index_path(data_dir)}: {exc}"
                " (move it aside and run this again)"
            ),
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    print(f"index rebuilt: {count} sessions", file=out)
    return EXIT_OK
