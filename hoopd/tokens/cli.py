"""``hoopd token exchange``, ``hoopd revoke`` and ``hoopd keys``.

``hoopd token exchange`` reads the subject token from ``HOOPD_TOKEN`` (else standard
input; never the command line, where other users could see it) and prints the new
token alone on standard output, so ``PGPASSWORD=$(hoopd token exchange ...)`` works.
With ``--admin URL`` it asks a running gateway's admin API (``POST /v1/token``); with
``--config FILE`` it mints locally, which needs read access to the gateway's signing
keys and write access to its token store (static and gateway tokens only: OIDC
tokens are exchanged through a gateway).

``hoopd ssh-cert`` (:mod:`hoopd.tokens.ssh_cert_cli`) gets an SSH certificate for a
token.

``hoopd revoke`` and ``hoopd keys`` act on the files the configuration names; whoever
can write them (the gateway's user) may use them, so they take no token.

Exit status: 0 done; 1 refused or failed, with the reason on standard error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, Final

import trio
from jose import jwt
from jose.exceptions import JWTError

from hoopd.admin_client import TOKEN_ENV, post_form, read_token
from hoopd.config import ConfigError, GatewayConfig, load_config, token_store_dir
from hoopd.identity.oidc import TOKEN_ID_PREFIX as OIDC_ID_PREFIX
from hoopd.identity.ssh_keys import TOKEN_ID_PREFIX as KEY_ID_PREFIX
from hoopd.identity.ssh_keys import KeyBindings
from hoopd.identity.tokens import TOKEN_ID_PREFIX as STATIC_ID_PREFIX
from hoopd.tokens import ssh_cert_cli
from hoopd.tokens.api import TOKEN_PATH
from hoopd.tokens.claims import TOKEN_ID_PREFIX
from hoopd.tokens.keys import KeyRing, KeyStoreError
from hoopd.tokens.service import ACCESS_TOKEN_TYPE, GRANT_TYPE
from hoopd.tokens.store import TokenStore
from hoopd.trust import keys_for, open_trust

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1


def add_token_actions(actions: argparse._SubParsersAction[Any]) -> None:
    """Add ``exchange`` to the subcommands of ``hoopd token``."""
    exchange = actions.add_parser(
        "exchange",
        help="exchange your token for a narrower, shorter-lived one",
        description="Exchange the token in $HOOPD_TOKEN (or on standard input) for a new"
        " gateway token whose scope and lifetime are at most the original's, optionally"
        " for a named actor (a sub-agent). Prints the new token alone.",
    )
    exchange.add_argument(
        "--scope",
        metavar="S",
        help="connection:action items, space-separated (default: your token's scope)",
    )
    exchange.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="lifetime (default: [identity] default)"
    )
    exchange.add_argument("--actor", metavar="NAME", help="the actor the new token is for")
    exchange.add_argument(
        "--json",
        action="store_true",
        help="print the whole answer as JSON, with the new token's id (for hoopd revoke)",
    )
    where = exchange.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--admin", metavar="URL", help="a gateway's admin API, e.g. http://127.0.0.1:8081"
    )
    where.add_argument("--config", metavar="FILE", help="mint locally with this hoopd.toml")
    exchange.set_defaults(func=_exchange)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hoopd revoke``, ``hoopd keys`` (``rotate``, ``list``) and ``hoopd ssh-cert``."""
    ssh_cert_cli.register(subparsers)
    revoke = subparsers.add_parser(
        "revoke",
        help="revoke a token and every token exchanged from it, a subject or an actor",
        description="Revoke a token id (and every token exchanged from it), every token of"
        " a subject issued so far, or every token naming an actor issued so far. Gateways"
        " sharing the token store refuse them from then on.",
    )
    what = revoke.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "token_id", nargs="?", metavar="TOKEN_ID", help="e.g. gt:..., st:... or key:SHA256:..."
    )
    what.add_argument("--subject", metavar="S", help="revoke this subject's tokens")
    what.add_argument("--actor", metavar="A", help="revoke tokens naming this actor")
    revoke.add_argument("--reason", default="", metavar="R", help="why (recorded)")
    _config(revoke)
    revoke.set_defaults(func=_revoke)

    keys = subparsers.add_parser(
        "keys",
        help="rotate or list the gateway token signing keys",
        description="The ES256 keys in <data_dir>/keys/ that sign gateway tokens.",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = actions.add_parser(
        "rotate",
        help="start signing with a new key; retire keys whose tokens have all expired",
        description="Create a new signing key. Older keys keep verifying until every token"
        " they signed has expired, then a later rotation deletes them.",
    )
    _config(rotate)
    rotate.set_defaults(func=_rotate)
    listing = actions.add_parser("list", help="list the signing keys")
    _config(listing)
    listing.set_defaults(func=_list_keys)


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="path to hoopd.toml")


def _exchange(args: argparse.Namespace) -> int:
    token = read_token()
    if not token:
        return _fail(f"token exchange: no token: set {TOKEN_ENV} or give it on standard input")
    form = {
        "grant_type": GRANT_TYPE,
        "subject_token": token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
    }
    for name, value in (("scope", args.scope), ("ttl", args.ttl), ("actor", args.actor)):
        if value is not None:
            form[name] = str(value)
    if args.admin is not None:
        answer = post_form(args.admin, TOKEN_PATH, form)
    else:
        answer = _exchange_local(Path(args.config), form)
    if isinstance(answer, str):
        return _fail(f"token exchange: {answer}")
    status, body = answer
    if status != 200 or not isinstance(body.get("access_token"), str):
        code = body.get("error", f"HTTP {status}")
        return _fail(f"token exchange refused: {code}: {body.get('error_description', '')}")
    if args.json:
        print(json.dumps({**body, "token_id": _token_id(body["access_token"])}))
    else:
        print(body["access_token"])
    return EXIT_OK


def _token_id(token: str) -> str | None:
    """The id `hoopd revoke` takes for a gateway token (read, not verified: the token
    was just received from the gateway)."""
    try:
        jti = jwt.get_unverified_claims(token).get("jti")
    except JWTError:
        return None
    return TOKEN_ID_PREFIX + jti if isinstance(jti, str) else None


def _exchange_local(path: Path, form: dict[str, str]) -> tuple[int, dict[str, Any]] | str:
    config = _load(path)
    if isinstance(config, str):
        return config
    try:
        with open_trust(config) as trust:
            return trio.run(trust.service.exchange, form)
    except (sqlite3.Error, OSError, KeyStoreError) as exc:
        return f"cannot use the token store or keys: {exc}"


def _revoke(args: argparse.Namespace) -> int:
    config = _load(Path(args.config))
    if isinstance(config, str):
        return _fail(f"revoke: {config}")
    by = f"cli:{getpass.getuser()}"
    try:
        with open_trust(config) as trust:
            store, service = trust.store, trust.service
            if args.token_id is not None:
                unknown = _unknown_token(args.token_id, config, store)
                if unknown is not None:
                    return _fail(f"revoke: {unknown}; nothing was revoked")
                derived = store.subtree(args.token_id)
                done = service.revoke_token(args.token_id, by, args.reason)
                print(f"Revoked token {done.value} (revocation {done.id}).")
                if derived:
                    print(f"Also revoked, as exchanged from it: {', '.join(derived)}")
            elif args.subject is not None:
                done = service.revoke_subject(args.subject, by, args.reason)
                print(f"Revoked the tokens of subject {done.value} issued so far", end="")
                print(f" (revocation {done.id}).")
            else:
                done = service.revoke_actor(args.actor, by, args.reason)
                print(f"Revoked the tokens naming actor {done.value} issued so far", end="")
                print(f" (revocation {done.id}).")
    except (sqlite3.Error, OSError) as exc:
        return _fail(f"revoke: cannot use the token store in {token_store_dir(config)}: {exc}")
    except ValueError as exc:
        return _fail(f"revoke: {exc}")
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    keys = _keys(args)
    if isinstance(keys, str):
        return _fail(f"keys rotate: {keys}")
    try:
        new, retired = keys.rotate()
    except KeyStoreError as exc:
        return _fail(f"keys rotate: {exc}")
    print(f"New signing key {new.kid}.")
    if retired:
        print(f"Retired (every token they signed has expired): {', '.join(retired)}")
    return EXIT_OK


def _list_keys(args: argparse.Namespace) -> int:
    keys = _keys(args)
    if isinstance(keys, str):
        return _fail(f"keys list: {keys}")
    try:
        infos = keys.list()
    except KeyStoreError as exc:
        return _fail(f"keys list: {exc}")
    if not infos:
        print(f"No signing keys yet in {keys.directory} (the first is made on first use).")
    for info in infos:
        status = (
            "signing" if info.signing else f"verifying; retires after {_when(info.retire_after)}"
        )
        print(f"{info.kid}  created {_when(info.created_at)}  {status}")
    return EXIT_OK


def _keys(args: argparse.Namespace) -> KeyRing | str:
    config = _load(Path(args.config))
    if isinstance(config, str):
        return config
    return keys_for(config)


def _load(path: Path) -> GatewayConfig | str:
    try:
        return load_config(path)
    except ConfigError as exc:
        return f"invalid configuration:\n{exc}"


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fail(message: str) -> int:
    print(f"hoopd {message}", file=sys.stderr)
    return EXIT_FAILED


def _unknown_token(token_id: str, config: GatewayConfig, store: TokenStore) -> str | None:
    """Why ``token_id`` names no token this gateway knows, or None. A revocation of a
    mistyped id would protect nothing while saying it did. OIDC token ids cannot be
    checked (hoopd keeps no list of the IdP's tokens), so they are taken as given."""
    if token_id.startswith(TOKEN_ID_PREFIX):
        if store.minted(token_id):
            return None
        return f"no unexpired token {token_id} was minted through this store (a typo, or expired)"
    if token_id.startswith(STATIC_ID_PREFIX):
        static_ids = {STATIC_ID_PREFIX + t.sha256.lower()[:12] for t in config.tokens}
        return None if token_id in static_ids else f"no static token {token_id} is configured"
    if token_id.startswith(OIDC_ID_PREFIX):
        return None
    if token_id.startswith(KEY_ID_PREFIX):
        bound = KeyBindings(config.ssh_keys).token_ids()
        return None if token_id in bound else f"no SSH key {token_id} is bound in [[ssh_keys]]"
    return (
        f"{token_id!r} is not a token id (gt:... for gateway tokens and SSH certificates,"
        " st:... for static tokens, oidc:... for OIDC tokens, key:... for bound SSH keys;"
        " `hoopd sessions` shows them)"
    )
