"""``hoopd blast-radius``: what a token could reach if it leaked, as text or JSON.

The token is checked by a verifier built from the configuration by the
``verifier_factory`` given to :func:`register` (by default the configured static
tokens only). It is taken from the command line, or, when left out or ``-``, from
``$HOOPD_TOKEN`` or else standard input, so it need not appear in the process list.

Exit status: 0 the report was printed; 1 the token was not accepted or the policy
has problems; 2 unusable configuration or no token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import trio

from hoopd.blast_radius import BlastRadius, ConnectionReach, Reach, blast_radius, to_json
from hoopd.config import ConfigError, GatewayConfig, load_config
from hoopd.identity.base import Identity, TokenVerifier
from hoopd.identity.scope import ScopeError
from hoopd.identity.tokens import StaticTokenVerifier
from hoopd.policy import Policy, PolicyError, load_policy

TOKEN_ENV: Final = "HOOPD_TOKEN"
VerifierFactory = Callable[[GatewayConfig], TokenVerifier]


def static_verifier(config: GatewayConfig) -> TokenVerifier:
    """The configured ``[[tokens]]`` alone (minted and OIDC tokens are not known to it)."""
    return StaticTokenVerifier(config.tokens)


def register(
    subparsers: argparse._SubParsersAction[Any],
    verifier_factory: VerifierFactory = static_verifier,
) -> None:
    """Add ``hoopd blast-radius``; tokens are checked by ``verifier_factory(config)``."""
    parser = subparsers.add_parser(
        "blast-radius",
        help="what a token could reach if it leaked",
        description="For each connection a token's scope grants: the action, and the"
        " policy's verdict on each kind of statement that action allows; then what any"
        f" token it could mint could do. The token is read from ${TOKEN_ENV}, or else"
        " from standard input, when TOKEN is left out or is '-'.",
    )
    parser.add_argument("token", nargs="?", default="-", metavar="TOKEN")
    parser.add_argument("--config", required=True, metavar="FILE", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object (keys documented)")
    parser.set_defaults(func=lambda args: run(args, verifier_factory))


def run(args: argparse.Namespace, verifier_factory: VerifierFactory) -> int:
    """Verify the token, compute its blast radius and print it; the exit status."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    token = _token(args.token)
    if not token:
        print(f"hoopd blast-radius: no token (give TOKEN or set ${TOKEN_ENV})", file=sys.stderr)
        return 2
    identity = trio.run(verifier_factory(config).verify, token)
    if identity is None:
        print(
            "hoopd blast-radius: token not accepted (unknown, expired or revoked)", file=sys.stderr
        )
        return 1
    policy: Policy | None = None
    if config.policy.directory is not None:
        try:
            policy = load_policy(config.policy.directory)
        except PolicyError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
    return report(identity, config, policy, args.json)


def report(identity: Identity, config: GatewayConfig, policy: Policy | None, as_json: bool) -> int:
    """Print the blast radius of an already verified identity; the exit status."""
    try:
        found = blast_radius(identity, config.connections, policy, config.identity.max_chain_depth)
    except ScopeError as exc:
        print(f"hoopd blast-radius: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(to_json(found), indent=2, sort_keys=False))
    else:
        for line in text_lines(found):
            print(line)
    return 0


def _token(given: str) -> str:
    if given != "-":
        return given
    from_env = os.environ.get(TOKEN_ENV, "")
    if from_env or sys.stdin is None or sys.stdin.isatty():
        return from_env.strip()
    return sys.stdin.readline().strip()


# ------------------------------------------------------------------------ text


def text_lines(found: BlastRadius) -> Iterator[str]:
    """The report for people: the token, then what it reaches, then its children."""
    who = found.identity
    chain = " > ".join((who.subject, *who.actor_chain))
    groups = f" (groups {', '.join(who.groups)})" if who.groups else ""
    yield f"token: {chain}{groups}, depth {who.depth}, issuer {who.issuer}, id {who.token_id}"
    scope = "unrestricted" if who.scope is None else " ".join(who.scope) or "(empty)"
    yield f"scope: {scope}"
    if who.expires_at is not None:
        when = datetime.fromtimestamp(who.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        yield f"expires: {when}"
    if not found.has_policy:
        yield "policy: none (every statement is let through, and recorded)"
    yield ""
    yield f"what this token can reach (depth {who.depth}):"
    yield from _reach_lines(found.reach, "  ")
    if found.unreachable:
        yield f"  not reachable (the scope grants nothing): {', '.join(found.unreachable)}"
    yield ""
    if not found.can_delegate:
        yield (
            f"tokens it could mint: only narrower ones at depth {who.depth}, the maximum chain"
            " depth, which reach no more than this token"
        )
        return
    yield (
        f"what a token it mints could use (up to depth {found.max_chain_depth}; narrower"
        " scopes only; actor names unknown):"
    )
    previous = found.reach
    for child in found.children:
        if child.connections == previous.connections:
            yield f"  depth {child.depth}: the same as depth {previous.depth}"
        else:
            yield f"  depth {child.depth}:"
            yield from _reach_lines(child, "    ")
        previous = child


def _reach_lines(reach: Reach, indent: str) -> Iterator[str]:
    if not reach.connections:
        yield f"{indent}no connection"
    for conn in reach.connections:
        yield from _connection_lines(conn, indent)


def _connection_lines(conn: ConnectionReach, indent: str) -> Iterator[str]:
    yield f"{indent}{conn.name} ({conn.protocol}): {conn.granted}"
    if not conn.kinds:
        yield f"{indent}  (no statement kinds known for this protocol)"
    for verdict in ("allow", "approve", "deny"):
        kinds = [k.kind for k in conn.kinds if k.verdict == verdict]
        if kinds:
            yield from _wrapped(f"{indent}  {verdict}: ", kinds)
    # One line per rule, naming every kind it could change.
    conditional: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for k in conn.kinds:
        for c in k.conditional:
            conditional.setdefault((c.rule, c.action, c.depends_on), []).append(k.kind)
    if conditional:
        yield f"{indent}  may differ for particular statements or actors:"
    for (rule, action, keys), kinds in conditional.items():
        others = [k.kind for k in conn.kinds if k.verdict != action]
        head = f"{indent}    {rule} ({action}) depending on {', '.join(keys)}; for "
        if len(kinds) == len(conn.kinds):
            yield head + "every kind"
        elif kinds == others and len(kinds) > 1:
            yield head + f"every kind not already {_PAST[action]}"
        else:
            yield from _wrapped(head, kinds)


_PAST: Final = {"allow": "allowed", "approve": "sent for approval", "deny": "denied"}


def _wrapped(head: str, items: list[str]) -> Iterator[str]:
    """``head`` and the items, wrapped at 100 columns under the first item."""
    lines = textwrap.wrap(
        ", ".join(items),
        width=100,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_on_hyphens=False,
    )
    yield from lines
