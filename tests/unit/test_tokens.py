"""Static API tokens: which tokens are accepted, what identity they give, and the
``hoopd token`` commands."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from hoopd.config import TokenConfig, config_from_dict
from hoopd.identity.base import Identity, TokenVerifier
from hoopd.identity.cli import register
from hoopd.identity.tokens import StaticTokenVerifier, new_token, token_sha256

ALICE_TOKEN = "hoopd_alice-token-0123456789abcdefghijk"
BOB_TOKEN = "hoopd_bob-token-ABCDEFGHIJKLMNOPQRSTUVWX"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def verifier() -> StaticTokenVerifier:
    return StaticTokenVerifier(
        [
            TokenConfig("alice", ("dba", "oncall"), sha(ALICE_TOKEN)),
            TokenConfig("bob", (), sha(BOB_TOKEN)),
        ]
    )


def test_right_token_gives_its_identity(verifier: StaticTokenVerifier) -> None:
    as_protocol: TokenVerifier = verifier
    assert trio.run(as_protocol.verify, ALICE_TOKEN) == verifier.lookup(ALICE_TOKEN)

    assert verifier.lookup(ALICE_TOKEN) == Identity(
        subject="alice", groups=("dba", "oncall"), token_id="st:" + sha(ALICE_TOKEN)[:12]
    )
    bob = verifier.lookup(BOB_TOKEN)
    assert bob is not None and (bob.subject, bob.groups) == ("bob", ())


@pytest.mark.parametrize(
    "token",
    [
        "",
        "hoopd_wrong",
        ALICE_TOKEN[:-1],
        ALICE_TOKEN + "x",
        ALICE_TOKEN.upper(),
        " " + ALICE_TOKEN,
        sha(ALICE_TOKEN),  # the hash itself is not a credential
        "\x00" * 40,
        "\udcff\udc80 lone surrogates from undecodable bytes",
        "\ud800",
        "ÿ" * 100,
        "x" * 10_000_000,
        ALICE_TOKEN * 1000,
    ],
    ids=lambda t: f"{t[:20]!r}...({len(t)} chars)",
)
def test_any_other_token_is_refused_without_raising(
    verifier: StaticTokenVerifier, token: str
) -> None:
    assert verifier.lookup(token) is None


@pytest.mark.parametrize("value", [None, b"hoopd_alice", 42, ["x"]])
def test_even_a_non_string_is_refused_without_raising(
    verifier: StaticTokenVerifier, value: Any
) -> None:
    assert verifier.lookup(value) is None


def test_token_id_does_not_reveal_the_token(verifier: StaticTokenVerifier) -> None:
    for token in (ALICE_TOKEN, BOB_TOKEN):
        identity = verifier.lookup(token)
        assert identity is not None
        assert identity.token_id != token
        assert token not in identity.token_id
        assert token[len("hoopd_") :][:8] not in identity.token_id


def test_every_entry_is_compared_whichever_matches(
    verifier: StaticTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No early exit: the work done does not depend on which token (if any) matched."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for token in (ALICE_TOKEN, BOB_TOKEN, "hoopd_nobody"):
        calls.clear()
        verifier.lookup(token)
        assert len(calls) == 2, token


def test_a_hash_configured_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="configured twice"):
        StaticTokenVerifier(
            [TokenConfig("a", (), sha(ALICE_TOKEN)), TokenConfig("b", (), sha(ALICE_TOKEN))]
        )


def test_new_tokens_are_random_prefixed_and_hashed() -> None:
    made = [new_token() for _ in range(50)]

    for token, digest in made:
        assert re.fullmatch(r"hoopd_[A-Za-z0-9_-]{32}", token)
        assert digest == sha(token) == token_sha256(token)
    assert len({token for token, _ in made}) == len(made)


# --- hoopd token -------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="hoopd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_token_new_prints_a_token_and_a_block_that_makes_it_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    identity = 'Ann "the admin" \\ O\x7fNeil'
    assert run(["token", "new", "--identity", identity, "--group", "dba", "--group", "ops"]) == 0
    out = capsys.readouterr().out

    (token,) = re.findall(r"hoopd_[A-Za-z0-9_-]{32}", out)
    assert out.count(token) == 1
    block = out[out.index("[[tokens]]") :]
    cfg = config_from_dict(
        {"gateway": {"data_dir": "/tmp/x"}, **tomllib.loads(block)}, Path("hoopd.toml")
    )
    verified = StaticTokenVerifier(cfg.tokens).lookup(token)
    assert verified is not None
    assert (verified.subject, verified.groups) == (identity, ("dba", "ops"))


def test_token_new_refuses_an_empty_identity(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["token", "new", "--identity", " "]) == 2
    captured = capsys.readouterr()
    assert "hoopd_" not in captured.out and "must not be empty" in captured.err


def test_token_new_requires_an_identity(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["token", "new"])
    assert "--identity" in capsys.readouterr().err


def test_token_hash_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(ALICE_TOKEN + "\n"))

    assert run(["token", "hash"]) == 0
    assert capsys.readouterr().out == sha(ALICE_TOKEN) + "\n"


def test_token_hash_refuses_empty_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    assert run(["token", "hash"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no token" in captured.err
