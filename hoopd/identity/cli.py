"""``hoopd token``: issue static API tokens and hash existing ones.

``hoopd token new`` prints the token exactly once; hoopd keeps only its SHA-256,
so a lost token is replaced, never recovered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import Any

from hoopd.identity.tokens import new_token, token_sha256
from hoopd.tokens.cli import add_token_actions


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hoopd token new`` and ``hoopd token hash``."""
    token = subparsers.add_parser(
        "token",
        help="issue or hash static API tokens",
        description="Issue or hash static API tokens ([[tokens]] in hoopd.toml).",
    )
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    add_token_actions(actions)  # hoopd token exchange

    new = actions.add_parser(
        "new",
        help="create a token; print it once and its [[tokens]] block",
        description="Create a random token. The token is printed once and stored nowhere;"
        " paste the printed [[tokens]] block into hoopd.toml and restart hoopd.",
    )
    new.add_argument("--identity", required=True, metavar="NAME", help="who the token is for")
    new.add_argument(
        "--days",
        type=int,
        default=30,
        metavar="N",
        help="days until the token expires (default 30; static tokens are for bootstrapping)",
    )
    new.add_argument(
        "--group",
        action="append",
        default=[],
        dest="groups",
        metavar="G",
        help="a group the identity belongs to (repeatable)",
    )
    new.set_defaults(func=_new)

    hash_ = actions.add_parser(
        "hash",
        help="print the SHA-256 of a token read from stdin",
        description="Read a token from standard input (one line) and print the SHA-256"
        " to put in the sha256 key of a [[tokens]] entry.",
    )
    hash_.set_defaults(func=_hash)


def _new(args: argparse.Namespace) -> int:
    identity: str = args.identity
    groups: list[str] = args.groups
    if not identity.strip() or not all(g.strip() for g in groups):
        print("hoopd token new: --identity and --group must not be empty", file=sys.stderr)
        return 2
    days: int = args.days
    if days < 1:
        print("hoopd token new: --days must be at least 1", file=sys.stderr)
        return 2
    token, digest = new_token()
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    expires = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    group_list = ", ".join(_toml_string(g) for g in dict.fromkeys(groups))
    print(f"Token for {identity} (shown only this once; hoopd stores just its hash):")
    print()
    print(f"    {token}")
    print()
    print("Add this to hoopd.toml, then restart hoopd:")
    print()
    print("[[tokens]]")
    print(f"identity = {_toml_string(identity)}")
    print(f"groups = [{group_list}]")
    print(f'sha256 = "{digest}"')
    print(f"expires = {expires}")
    return 0


def _hash(args: argparse.Namespace) -> int:
    # From a terminal, prompt without echo so the token does not end up on screen.
    line = getpass.getpass("Token: ") if sys.stdin.isatty() else sys.stdin.readline()
    token = line.rstrip("\r\n")
    if not token:
        print("hoopd token hash: no token on standard input", file=sys.stderr)
        return 2
    print(token_sha256(token))
    return 0


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
