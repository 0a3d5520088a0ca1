"""What a credential can reach if it leaks: per connection, the action its scope
grants and the policy's verdict on each statement kind that action admits; then
what any token it could mint (by exchange, up to the configured chain depth)
could do.

Guarantees of :func:`blast_radius`:

* it is pure: it reads the identity, the connections and the policy, and judges
  synthetic statements with :meth:`hoopd.policy.Policy.judge`, unchanged;
* a connection is listed only if the token's scope grants an action on it, and a
  kind only if that action admits it (:data:`hoopd.actions.SQL_KIND_LEVELS`; kinds
  not listed there need ``admin``);
* each verdict is the one for a *generic* statement of that kind: one statement,
  no tables or functions named, a WHERE clause where one can be. Every rule whose
  other keys hold but whose match depends on what a particular statement names or
  does (tables, functions, where_absent, multi_statement, opaque) is listed with it
  as ``conditional``, so the report never claims more certainty than it has;
* a minted token keeps its parent's subject and groups and can only narrow the
  scope, so a child's connections and kinds are at most its parent's. A child
  minted without a new actor keeps the parent's chain and depth, so it can do no
  more than the parent (``reach``); ``children`` are the tokens one or more actors
  deeper, which exist only while the depth is below ``max_chain_depth``. Their actor
  names are unknown: the verdict is the one for an actor no actor rule names
  (only patterns made of ``*`` alone match it), and rules on ``identity.actor`` or
  ``identity.actor_chain`` that a particular name could satisfy are ``conditional``.

JSON (:func:`to_json`), every key always present::

    {
      "identity": {"subject", "groups", "actor_chain", "actor", "depth", "issuer",
                   "token_id", "scope" (list or null: unrestricted),
                   "expires_at" (Unix seconds or null), "lineage"},
      "policy": true | false,          # false: no policy, every statement is let through
      "max_chain_depth": int,
      "reach": REACH,                  # this token, at its own depth
      "unreachable": [connection names the scope grants nothing on],
      "can_delegate": bool,            # false when depth >= max_chain_depth
      "children": [REACH, ...]         # one per depth from depth + 1 to max_chain_depth
    }
    REACH = {"depth": int, "actor": str | null (null: a name not yet known),
             "connections": [{"name", "protocol", "granted": "read" | "write" | "admin",
                              "kinds": [{"kind", "verdict": "allow" | "deny" | "approve",
                                         "rule": str | null (null: a default decided),
                                         "conditional": [{"rule", "action",
                                                          "depends_on": [match keys]}]}]}]}

Lists are in a stable order: connections as configured, kinds alphabetically,
conditional rules in policy order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from hoopd.actions import ADMIN, SQL_KIND_LEVELS, action_name
from hoopd.config import ConnectionConfig
from hoopd.events import SqlClassification, SqlStatement
from hoopd.identity.base import Identity
from hoopd.identity.scope import granted_level, parse_scope
from hoopd.policy import Policy, Rule, Subject
from hoopd.policy import Verdict as PolicyVerdict
from hoopd.protocols.postgres.classify import KINDS
from hoopd.tokens.claims import ISSUER_NAME

REPORTED_KINDS: Final = tuple(sorted(KINDS - {"empty", "unknown-portal"}))
"""The kinds reported: every kind a client can cause. An empty query does nothing,
and ``unknown-portal`` is the engine's name for an Execute of a portal it never saw
bound, not something a client asks for."""

SQL_PROTOCOLS: Final = frozenset({"postgres"})
"""Protocols whose commands are SQL statements, judged by kind."""

STATEMENT_KEYS: Final = frozenset(
    {"tables_read", "tables_written", "tables", "functions", "where_absent", "multi_statement",
     "opaque"}
)  # fmt: skip
"""Match keys a generic statement of one kind cannot settle."""

ACTOR_KEYS: Final = frozenset({"identity.actor", "identity.actor_chain"})
"""Match keys an actor whose name is not known cannot settle."""

UNKNOWN_ACTOR: Final = ""
# No real actor is named "": it matches only globs made of "*" alone, which match
# every name, so a verdict judged with it holds for any name no actor rule singles out.

_OPAQUE_KINDS: Final = frozenset({"execute", "do-block"})
# The classifier marks these opaque whenever it reports them.

Verdict = Literal["allow", "deny", "approve"]


@dataclass(frozen=True, slots=True)
class Conditional:
    """A rule that could decide differently for particular statements or actors."""

    rule: str
    action: str
    depends_on: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KindReach:
    kind: str
    verdict: Verdict
    rule: str | None
    conditional: tuple[Conditional, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionReach:
    name: str
    protocol: str
    granted: str
    kinds: tuple[KindReach, ...]


@dataclass(frozen=True, slots=True)
class Reach:
    """What a token at ``depth`` can do; ``actor`` is ``None`` when not known."""

    depth: int
    actor: str | None
    connections: tuple[ConnectionReach, ...]


@dataclass(frozen=True, slots=True)
class BlastRadius:
    identity: Identity
    has_policy: bool
    max_chain_depth: int
    reach: Reach
    unreachable: tuple[str, ...]
    children: tuple[Reach, ...]

    @property
    def can_delegate(self) -> bool:
        """Whether a token one actor deeper can be minted from this one."""
        return self.identity.depth < self.max_chain_depth


def blast_radius(
    identity: Identity,
    connections: Sequence[ConnectionConfig],
    policy: Policy | None,
    max_chain_depth: int,
) -> BlastRadius:
    """What ``identity`` can reach, and what tokens minted from it could (minted
    tokens are the gateway's own, issuer ``hoopd``). Raises ``ScopeError`` (a
    ``ValueError``) if the identity's scope is not well formed.
    """
    scope = None if identity.scope is None else parse_scope(identity.scope)
    granted = {c.name: granted_level(scope, c.name) for c in connections}
    reachable = [c for c in connections if granted[c.name] is not None]
    levels = {c.name: level for c in reachable if (level := granted[c.name]) is not None}
    own = _reach(identity, reachable, levels, policy, actor_known=True)
    children = tuple(
        _reach(_child(identity, depth), reachable, levels, policy, actor_known=False)
        for depth in range(identity.depth + 1, max_chain_depth + 1)
    )
    return BlastRadius(
        identity=identity,
        has_policy=policy is not None,
        max_chain_depth=max_chain_depth,
        reach=own,
        unreachable=tuple(c.name for c in connections if granted[c.name] is None),
        children=children,
    )


def _child(parent: Identity, depth: int) -> Identity:
    hops = (UNKNOWN_ACTOR,) * (depth - parent.depth)
    return Identity(
        parent.subject,
        parent.groups,
        "(minted)",
        parent.actor_chain + hops,
        scope=parent.scope,
        issuer=ISSUER_NAME,
        lineage=(*parent.lineage, parent.token_id),
    )


def _reach(
    identity: Identity,
    connections: Sequence[ConnectionConfig],
    levels: dict[str, int],
    policy: Policy | None,
    *,
    actor_known: bool,
) -> Reach:
    found = []
    for conn in connections:
        level = levels[conn.name]
        subject = Subject(identity, conn.name, conn.labels, conn.protocol)
        kinds: tuple[KindReach, ...] = ()
        if conn.protocol in SQL_PROTOCOLS:
            kinds = tuple(
                _judge(policy, subject, kind, actor_known)
                for kind in REPORTED_KINDS
                if SQL_KIND_LEVELS.get(kind, ADMIN) <= level
            )
        found.append(ConnectionReach(conn.name, conn.protocol, action_name(level), kinds))
    actor = identity.actor if actor_known else None
    return Reach(identity.depth, actor, tuple(found))


def generic_statement(kind: str) -> SqlStatement:
    """One statement of ``kind`` naming no table or function."""
    unparseable = kind == "unparseable"
    classification = SqlClassification(
        frozenset({kind}),
        opaque=kind in _OPAQUE_KINDS,
        parse_error="(any text the grammar rejects)" if unparseable else None,
    )
    return SqlStatement(f"<any {kind} statement>", classification)


def _judge(policy: Policy | None, subject: Subject, kind: str, actor_known: bool) -> KindReach:
    if policy is None:
        return KindReach(kind, "allow", None)
    statement = generic_statement(kind)
    verdict = policy.judge(subject, statement)
    conditional = tuple(
        Conditional(rule.name, rule.action, unsettled)
        for rule in policy.rules
        if (unsettled := _unsettled(rule, subject, statement.classification, actor_known))
        and _could_change(rule, verdict)
    )
    return KindReach(kind, verdict.action, verdict.rule, conditional)


_RANK: Final = {"allow": 0, "approve": 1, "deny": 2}


def _could_change(rule: Rule, verdict: PolicyVerdict) -> bool:
    """Whether the rule matching, or failing to, could change the verdict's action."""
    if rule.name == verdict.rule:
        return True  # a statement it does not match is decided by something else
    if rule.name in verdict.matched:
        return False  # it lost to the deciding rule, and would lose again
    if verdict.rule is None:
        return rule.action != verdict.action  # any matching rule overrides a default
    return _RANK[rule.action] > _RANK[verdict.action]  # deny beats approve beats allow


def _unsettled(
    rule: Rule, subject: Subject, c: SqlClassification, actor_known: bool
) -> tuple[str, ...]:
    """The keys of ``rule`` that particular statements or actors could decide
    either way, if every other key holds; empty if the rule's fate is settled."""
    unsettled = []
    for check in rule.match.checks:
        if check.key in STATEMENT_KEYS:
            unsettled.append(check.key)
        elif check.holds(subject, c):
            continue
        elif not actor_known and check.key in ACTOR_KEYS:
            unsettled.append(check.key)  # some name could match it
        else:
            return ()  # a key that fails whatever the statement: the rule cannot match
    return tuple(unsettled)


def to_json(report: BlastRadius) -> dict[str, Any]:
    """The report as the module docstring describes it."""
    who = report.identity
    return {
        "identity": {
            "subject": who.subject,
            "groups": list(who.groups),
            "actor_chain": list(who.actor_chain),
            "actor": who.actor,
            "depth": who.depth,
            "issuer": who.issuer,
            "token_id": who.token_id,
            "scope": None if who.scope is None else list(who.scope),
            "expires_at": who.expires_at,
            "lineage": list(who.lineage),
        },
        "policy": report.has_policy,
        "max_chain_depth": report.max_chain_depth,
        "reach": _reach_json(report.reach),
        "unreachable": list(report.unreachable),
        "can_delegate": report.can_delegate,
        "children": [_reach_json(child) for child in report.children],
    }


def _reach_json(reach: Reach) -> dict[str, Any]:
    return {
        "depth": reach.depth,
        "actor": reach.actor,
        "connections": [
            {
                "name": conn.name,
                "protocol": conn.protocol,
                "granted": conn.granted,
                "kinds": [
                    {
                        "kind": k.kind,
                        "verdict": k.verdict,
                        "rule": k.rule,
                        "conditional": [
                            {"rule": c.rule, "action": c.action, "depends_on": list(c.depends_on)}
                            for c in k.conditional
                        ],
                    }
                    for k in conn.kinds
                ],
            }
            for conn in reach.connections
        ],
    }
