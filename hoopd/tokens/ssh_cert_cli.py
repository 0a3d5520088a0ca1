"""``hoopd ssh-cert KEY``: an SSH certificate for your token, written where ``ssh -i KEY``
looks for it.

Reads the token from ``HOOPD_TOKEN`` (else standard input; never the command line)
and the public key from ``KEY.pub`` (``KEY`` may name either half), asks for a
certificate (:mod:`hoopd.tokens.ssh_issue`), with ``--admin URL`` from a running
gateway's admin API (``POST /v1/ssh/certificate``) or with ``--config FILE`` from
the token store directly, and writes it to ``KEY-cert.pub`` (replacing it
atomically), which OpenSSH's ``ssh -i KEY`` then presents on its own.

Exit status: 0 written; 1 refused or failed, with the reason on standard error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Final

import trio

from hoopd.admin_client import TOKEN_ENV, post_form, read_token
from hoopd.config import ConfigError, load_config
from hoopd.tokens.api import SSH_CERTIFICATE_PATH
from hoopd.tokens.keys import KeyStoreError
from hoopd.tokens.ssh_issue import issuer_for
from hoopd.trust import open_trust

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1

Answer = tuple[int, dict[str, Any]]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hoopd ssh-cert``."""
    command = subparsers.add_parser(
        "ssh-cert",
        help="get a short-lived SSH certificate for your token, beside your key",
        description="Exchange the token in $HOOPD_TOKEN (or on standard input) and the"
        " public key KEY.pub for an SSH user certificate signed by the gateway's CA,"
        " valid at most until the token expires, and write it to KEY-cert.pub, where"
        " `ssh -i KEY` finds it.",
    )
    command.add_argument("key", metavar="KEY", help="your private key file (or KEY.pub)")
    command.add_argument(
        "--scope", metavar="S", help="connection:action items (default: your token's scope)"
    )
    command.add_argument(
        "--ttl",
        type=int,
        metavar="SECONDS",
        help="validity (default and most: [identity] ssh_certificate_max_ttl_seconds)",
    )
    command.add_argument("--actor", metavar="NAME", help="the actor the certificate is for")
    command.add_argument(
        "--json", action="store_true", help="print the answer as JSON, with the file written"
    )
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--admin", metavar="URL", help="a gateway's admin API, e.g. http://127.0.0.1:8081"
    )
    where.add_argument("--config", metavar="FILE", help="issue locally with this hoopd.toml")
    command.set_defaults(func=_ssh_cert)


def key_paths(key: str) -> tuple[Path, Path]:
    """The public key file and the certificate file for ``key`` (either half)."""
    base = key.removesuffix(".pub")
    return Path(base + ".pub"), Path(base + "-cert.pub")


def _ssh_cert(args: argparse.Namespace) -> int:
    public_path, cert_path = key_paths(args.key)
    try:
        public_key = public_path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read the public key {public_path}: {exc}")
    token = read_token()
    if not token:
        return _fail(f"no token: set {TOKEN_ENV} or give it on standard input")
    form = {"public_key": public_key}
    for name, value in (("scope", args.scope), ("ttl", args.ttl), ("actor", args.actor)):
        if value is not None:
            form[name] = str(value)
    if args.admin is not None:
        answer = _remote(args.admin, token, form)
    else:
        answer = _local(Path(args.config), token, form)
    if isinstance(answer, str):
        return _fail(answer)
    status, body = answer
    certificate = body.get("certificate")
    if status != 200 or not isinstance(certificate, str):
        code = body.get("error", f"HTTP {status}")
        return _fail(f"refused: {code}: {body.get('error_description', '')}")
    try:
        _write(cert_path, certificate + "\n")
    except OSError as exc:
        return _fail(f"cannot write {cert_path}: {exc}")
    if args.json:
        print(json.dumps({**body, "file": str(cert_path)}))
    else:
        until = dt.datetime.fromtimestamp(int(body.get("expires_at", 0)), dt.UTC)
        print(
            f"{cert_path}: certificate {body.get('token_id')} for {body.get('scope')},"
            f" valid until {until:%Y-%m-%dT%H:%M:%SZ}"
        )
    return EXIT_OK


def _local(path: Path, token: str, form: dict[str, str]) -> Answer | str:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return f"invalid configuration:\n{exc}"
    try:
        with open_trust(config) as trust:
            return trio.run(issuer_for(trust.service).issue, token, form)
    except (sqlite3.Error, OSError, KeyStoreError) as exc:
        return f"cannot use the token store or keys: {exc}"


def _remote(url: str, token: str, form: dict[str, str]) -> Answer | str:
    return post_form(url, SSH_CERTIFICATE_PATH, form, bearer=token)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically: ssh never reads half a certificate."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text, encoding="ascii")
        temp.chmod(0o644)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _fail(message: str) -> int:
    print(f"hoopd ssh-cert: {message}", file=sys.stderr)
    return EXIT_FAILED
