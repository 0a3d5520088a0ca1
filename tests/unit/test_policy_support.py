"""Helpers shared by the policy tests (this module holds no tests itself)."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from hoopd.cli import main
from hoopd.events import SqlStatement
from hoopd.identity.base import Identity
from hoopd.policy import Policy, Subject, Verdict, load_policy
from hoopd.protocols.postgres.classify import classify

REPO = Path(__file__).resolve().parent.parent.parent
PACKS = REPO / "policies"


def write(directory: Path, name: str, text: str) -> Path:
    """Write a YAML file (dedented) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def policy_from(directory: Path, text: str, name: str = "rules.yaml") -> Policy:
    write(directory, name, text)
    return load_policy(directory)


def subject(
    who: str = "alice",
    groups: Sequence[str] = (),
    connection: str = "prod",
    labels: Mapping[str, str] | None = None,
    protocol: str = "postgres",
    actors: Sequence[str] = (),
) -> Subject:
    identity = Identity(who, tuple(groups), "tok-1", tuple(actors))
    return Subject(identity, connection, dict(labels or {}), protocol)


def judge(policy: Policy, sql: str, who: Subject | None = None) -> Verdict:
    """The verdict on ``sql`` as the gateway would classify it."""
    return policy.judge(who or subject(), SqlStatement(sql, classify(sql)))


@dataclass(frozen=True)
class CliResult:
    status: int
    out: str
    err: str


def run_cli(argv: Sequence[str]) -> CliResult:
    """Run ``hoopd`` in-process, as the installed command would."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            status = exc.code if isinstance(exc.code, int) else 2
    return CliResult(status, out.getvalue(), err.getvalue())
