"""``hoopd approvals``, ``hoopd approve`` and ``hoopd deny``: approvers act from a terminal.

The approver proves who they are with their own gateway token, read from the
``HOOPD_TOKEN`` environment variable or else from standard input (a prompt without
echo on a terminal), never from the command line, where other users could see it in
the process list. The token is checked against the ``[[tokens]]`` of ``--config``,
which also names the data directory holding the requests.

Exit status: 0 done; 1 refused (bad token, or any reason the request cannot be acted
on, with a message saying which); 2 unusable configuration or no token.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TextIO

import trio

from hoopd.admin_client import TOKEN_ENV, read_token
from hoopd.approvals.model import ApprovalError, ApprovalRequest
from hoopd.approvals.render import request_details, request_table
from hoopd.approvals.rules import may_see
from hoopd.approvals.store import ApprovalStore
from hoopd.approvals.text import shown
from hoopd.config import ConfigError, GatewayConfig, approval_store_dir, load_config
from hoopd.identity.base import Identity
from hoopd.trust import admin_verifier

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2

Action = Callable[[argparse.Namespace, ApprovalStore, Identity, TextIO], int]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``approvals``, ``approve`` and ``deny`` to the ``hoopd`` command."""
    token_note = f" The token is read from ${TOKEN_ENV}, or else from standard input."
    listing = subparsers.add_parser(
        "approvals",
        help="list approval requests waiting for you",
        description="List pending approval requests you may decide (and your own), or show"
        " one request in full." + token_note,
    )
    listing.add_argument("request_id", nargs="?", metavar="ID", help="show this request in full")
    _config(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per request")
    listing.set_defaults(func=_authenticated("approvals", _list))

    approve = subparsers.add_parser(
        "approve",
        help="approve a pending request",
        description="Approve a pending request; it runs once it has all the approvals it"
        " needs." + token_note,
    )
    approve.add_argument("request_id", metavar="ID")
    _config(approve)
    approve.add_argument("--reason", default="", metavar="R", help="why (recorded)")
    approve.set_defaults(func=_authenticated("approve", _decide(True)))

    deny = subparsers.add_parser(
        "deny",
        help="deny a pending request",
        description="Deny a pending request; the requester is told the reason." + token_note,
    )
    deny.add_argument("request_id", metavar="ID")
    _config(deny)
    deny.add_argument("--reason", required=True, metavar="R", help="why (the requester sees it)")
    deny.set_defaults(func=_authenticated("deny", _decide(False)))


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="path to hoopd.toml")


def _authenticated(name: str, action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            config = load_config(Path(args.config))
        except ConfigError as exc:
            print(f"hoopd {name}: invalid configuration:\n{exc}", file=sys.stderr)
            return EXIT_USAGE
        token = read_token()
        if not token:
            print(
                f"hoopd {name}: no token: set {TOKEN_ENV} or give your token on standard input",
                file=sys.stderr,
            )
            return EXIT_USAGE
        identity = _caller(config, token)
        if identity is None:
            print(
                f"hoopd {name}: the token is not valid (it is not one of the [[tokens]]"
                f" in {args.config}, nor a current gateway token)",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        try:
            with ApprovalStore.open(approval_store_dir(config)) as store:
                return action(args, store, identity, sys.stdout)
        except ApprovalError as exc:
            print(f"hoopd {name}: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, and keep Python's
            # final flush of stdout from failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_REFUSED
        except (sqlite3.Error, OSError) as exc:
            print(
                f"hoopd {name}: cannot use the approval store in {config.data_dir}: {exc}",
                file=sys.stderr,
            )
            return EXIT_REFUSED

    return run


def _list(args: argparse.Namespace, store: ApprovalStore, who: Identity, out: TextIO) -> int:
    if args.request_id is not None:
        store.expire_overdue(store.now())
        request = store.get(args.request_id)
        if request is None or not may_see(request, who):
            raise ApprovalError("unknown", f"no approval request {args.request_id!r}")
        _show([request], args.json, store.now(), out, full=True)
        return EXIT_OK
    requests = [r for r in store.pending() if may_see(r, who)]
    if not requests and not args.json:
        print("No pending approval requests for you.", file=out)
        return EXIT_OK
    _show(requests, args.json, store.now(), out, full=False)
    return EXIT_OK


def _show(
    requests: list[ApprovalRequest], as_json: bool, now: float, out: TextIO, *, full: bool
) -> None:
    if as_json:
        for request in requests:
            # ASCII only: the JSON means the same, and a terminal shows nothing hidden.
            print(json.dumps(request.to_json()), file=out)
    elif full:
        print(request_details(requests[0], now), file=out)
    else:
        print(request_table(requests, now), file=out)


def _decide(approve: bool) -> Action:
    def decide(args: argparse.Namespace, store: ApprovalStore, who: Identity, out: TextIO) -> int:
        request = store.decide(args.request_id, who, approve, args.reason)
        if request.status == "approved":
            print(f"Approved {request.id} ({shown(request.resolution)}).", file=out)
        elif request.status == "denied":
            print(f"Denied {request.id}; the requester is told: {shown(args.reason)}", file=out)
        else:
            missing = request.min_approvals - request.approvals
            print(
                f"Recorded your approval of {request.id} ({request.approvals} of"
                f" {request.min_approvals}); it waits for {missing} more from"
                f" {', '.join(request.approver_groups)}.",
                file=out,
            )
        return EXIT_OK

    return decide


def _caller(config: GatewayConfig, token: str) -> Identity | None:
    """Who ``token`` is, checked as the admin API checks it; None if not valid."""
    try:
        return trio.run(admin_verifier(config).verify, token)
    except (OSError, sqlite3.Error) as exc:
        print(f"hoopd: the token store cannot be used: {exc}", file=sys.stderr)
        return None
