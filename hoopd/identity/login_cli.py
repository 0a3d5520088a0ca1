"""``hoopd login``: sign in at an OpenID Connect provider with the device
authorization grant (RFC 8628) and exchange the provider's access token at a gateway
(``POST /v1/token``, RFC 8693) for a gateway token that psql and other clients use.

Guarantees:

* the provider's access token is sent only to the gateway's admin API, which must be
  https or http to a loopback address; it is never printed and never written;
* the gateway token goes to exactly one place: the token file (default), standard
  output alone (``--print``), a PostgreSQL password file line (``--pgpass``) or a
  kubeconfig user entry (``--kubeconfig``), files as :mod:`hoopd.identity.login_files`
  writes them (atomic, mode 0600);
* everything meant for the person (the code to enter, progress, what was written,
  who signed in, the expiry, errors) goes to standard error, never a token;
* the command line and the configuration are checked before the sign-in starts, so
  nobody approves a sign-in only to see the command fail on a typo.

Exit status: 0 signed in and written; 1 failed (the provider or gateway unreachable,
the sign-in denied or expired, the exchange refused, a file not writable), the reason
on standard error; 2 bad usage; 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hoopd.config import ConfigError, GatewayConfig, load_config
from hoopd.config_identity import OidcIssuerConfig
from hoopd.identity import login_files
from hoopd.identity.device_flow import (
    DeviceFlowError,
    discover,
    poll_for_token,
    start_device_flow,
)
from hoopd.identity.http_json import request_json, url_allowed
from hoopd.tokens.api import TOKEN_PATH
from hoopd.tokens.service import ACCESS_TOKEN_TYPE, GRANT_TYPE

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
DEFAULT_IDP_SCOPE: Final = "openid"


class _Stop(Exception):
    """End the command with ``status``; ``message`` goes to standard error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything settled before the sign-in starts."""

    issuer: OidcIssuerConfig
    client_id: str
    token_endpoint: str
    destination: str  # "print", "file", "pgpass" or "kubeconfig"
    path: Path | None
    pgpass_address: tuple[str, int] | None


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hoopd login``."""
    login = subparsers.add_parser(
        "login",
        help="sign in at your identity provider and get a gateway token",
        description="Sign in at the OpenID Connect provider of an [[oidc.issuers]] entry"
        " (open the address shown, enter the code), exchange the provider's token at the"
        " gateway for a gateway token and store it: in $XDG_CONFIG_HOME/hoopd/token by"
        " default, or as asked below. See docs/login.md.",
    )
    login.add_argument("--config", required=True, metavar="FILE", help="path to hoopd.toml")
    login.add_argument("--issuer", metavar="NAME", help="the [[oidc.issuers]] entry to use")
    login.add_argument(
        "--scope",
        metavar="S",
        help="connection:action items, space-separated (default: all your identity may have)",
    )
    login.add_argument(
        "--ttl", type=_seconds, metavar="SECONDS", help="lifetime (default: [identity] default)"
    )
    login.add_argument(
        "--idp-scope",
        default=DEFAULT_IDP_SCOPE,
        metavar="S",
        help=f"the scope asked of the provider (default {DEFAULT_IDP_SCOPE!r})",
    )
    where = login.add_mutually_exclusive_group()
    where.add_argument(
        "--print", action="store_true", help="print the token alone on standard output"
    )
    where.add_argument("--pgpass", metavar="FILE", help="add its line to this PGPASSFILE")
    where.add_argument("--kubeconfig", metavar="FILE", help="write a kubeconfig user entry")
    login.add_argument(
        "--connection", metavar="NAME", help="the connection (with --pgpass or --kubeconfig)"
    )
    login.add_argument(
        "--admin",
        metavar="URL",
        help="the gateway's admin API (default: http://[approvals] admin_listen)",
    )
    login.set_defaults(func=_login)


def _seconds(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return int(text)


def _login(args: argparse.Namespace) -> int:
    try:
        plan = _plan(args)
        access_token, subject_hint = _sign_in(plan, args.idp_scope)
        answer = _exchange(plan.token_endpoint, access_token, args.scope, args.ttl)
        _store(plan, args.connection, answer["access_token"])
    except _Stop as stop:
        print(f"hoopd login: {stop.message}", file=sys.stderr)
        return stop.status
    except KeyboardInterrupt:
        print("\nhoopd login: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(plan, args.connection, answer, subject_hint)
    return EXIT_OK


# -- before the sign-in ------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> _Plan:
    destination = "pgpass" if args.pgpass else "kubeconfig" if args.kubeconfig else None
    if destination is not None and not args.connection:
        raise _Stop(EXIT_USAGE, f"--{destination} needs --connection NAME")
    if destination is None and args.connection:
        raise _Stop(EXIT_USAGE, "--connection goes with --pgpass or --kubeconfig")
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        raise _Stop(EXIT_FAILED, f"invalid configuration:\n{exc}") from None
    issuer = _issuer(config, args.issuer)
    if issuer.client_id is None:
        raise _Stop(
            EXIT_FAILED,
            f"issuer {issuer.name!r} has no client_id (the public client hoopd login"
            " signs in with); add it to its [[oidc.issuers]] entry",
        )
    address = None
    path: Path | None = None
    try:
        if destination == "pgpass":
            path = Path(args.pgpass)
            address = _listen_address(config, args.connection)
            login_files.read_text(path)  # readable now, not only after the sign-in
        elif destination == "kubeconfig":
            path = Path(args.kubeconfig)
            login_files.check_kubeconfig_target(path)
        elif not args.print:
            path = login_files.default_token_file()
    except login_files.LoginFileError as exc:
        raise _Stop(EXIT_FAILED, str(exc)) from None
    if path is not None and destination is not None and not path.parent.is_dir():
        raise _Stop(EXIT_FAILED, f"{path.parent} is not a directory")
    return _Plan(
        issuer=issuer,
        client_id=issuer.client_id,
        token_endpoint=_admin_url(config, args.admin).rstrip("/") + TOKEN_PATH,
        destination=destination or ("print" if args.print else "file"),
        path=path,
        pgpass_address=address,
    )


def _issuer(config: GatewayConfig, name: str | None) -> OidcIssuerConfig:
    issuers = config.oidc_issuers
    names = ", ".join(i.name for i in issuers)
    if not issuers:
        raise _Stop(EXIT_FAILED, f"{config.source} has no [[oidc.issuers]] to sign in with")
    if name is None:
        if len(issuers) > 1:
            raise _Stop(
                EXIT_USAGE, f"several issuers are configured; choose with --issuer: {names}"
            )
        return issuers[0]
    for issuer in issuers:
        if issuer.name == name:
            return issuer
    raise _Stop(EXIT_USAGE, f"no issuer is named {name!r}; configured: {names}")


def _listen_address(config: GatewayConfig, name: str) -> tuple[str, int]:
    for connection in config.connections:
        if connection.name == name:
            if connection.listen_port == 0:
                raise _Stop(
                    EXIT_FAILED, f"connection {name!r} listens on port 0 (a port chosen at start)"
                )
            return connection.listen_address
    known = ", ".join(c.name for c in config.connections) or "none"
    raise _Stop(EXIT_USAGE, f"no connection is named {name!r}; configured: {known}")


def _admin_url(config: GatewayConfig, admin: str | None) -> str:
    if admin is not None:
        if not url_allowed(admin):
            raise _Stop(
                EXIT_USAGE,
                f"--admin must be https, or http to a loopback address, not {admin!r}"
                " (your sign-in token is sent there)",
            )
        return admin
    listen = config.approvals.admin_listen
    if listen is None:
        raise _Stop(
            EXIT_USAGE, "give --admin URL: the configuration has no [approvals] admin_listen"
        )
    host, port = listen
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# -- the sign-in and the exchange ----------------------------------------------------------


def _sign_in(plan: _Plan, idp_scope: str) -> tuple[str, str | None]:
    """The provider's access token, and its ``sub`` if readable (for messages only)."""
    issuer, ca_file = plan.issuer, plan.issuer.ca_file
    try:
        discovery = discover(issuer.issuer, ca_file)
        code = start_device_flow(discovery, plan.client_id, idp_scope, ca_file=ca_file)
        user_code = _printable(code.user_code)
        _say(f"To sign in at {issuer.name}, open this address and enter the code {user_code}:")
        _say(f"  {_printable(code.verification_uri)}")
        if code.verification_uri_complete:
            _say("or open this one, which carries the code:")
            _say(f"  {_printable(code.verification_uri_complete)}")
        minutes = max(1, round(code.expires_in / 60))
        _say(f"Waiting for the sign-in to be approved (the code expires in {minutes} min)...")
        deadline = time.monotonic() + code.expires_in
        answer = poll_for_token(
            discovery, plan.client_id, code.device_code, code.interval, deadline, ca_file=ca_file
        )
    except DeviceFlowError as exc:
        raise _Stop(EXIT_FAILED, _sign_in_failure(issuer.name, exc)) from None
    except http.client.HTTPException as exc:  # not HTTP at all: no OSError, no ValueError
        raise _Stop(EXIT_FAILED, f"cannot sign in at {issuer.name}: {exc!r}") from None
    token: str = answer["access_token"]
    return token, _claims(token).get("sub")


def _sign_in_failure(issuer: str, exc: DeviceFlowError) -> str:
    if exc.error == "access_denied":
        return f"the sign-in was denied at {issuer}; nothing was written"
    if exc.error == "expired_token":
        return "the code expired before the sign-in was approved; run hoopd login again"
    return f"cannot sign in at {issuer}: {exc}"


def _exchange(
    endpoint: str, access_token: str, scope: str | None, ttl: int | None
) -> dict[str, Any]:
    """The gateway's 200 answer to the exchange; :class:`_Stop` for anything else."""
    form = {
        "grant_type": GRANT_TYPE,
        "subject_token": access_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
    }
    if scope is not None:
        form["scope"] = " ".join(scope.split())
    if ttl is not None:
        form["ttl"] = str(ttl)
    try:
        status, body = request_json(endpoint, form=form)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _Stop(EXIT_FAILED, f"cannot reach the gateway at {endpoint}: {reason}") from None
    except http.client.HTTPException as exc:
        raise _Stop(
            EXIT_FAILED, f"the gateway at {endpoint} did not answer HTTP: {exc!r}"
        ) from None
    except ValueError as exc:
        raise _Stop(EXIT_FAILED, f"the gateway at {endpoint}: {exc}") from None
    if not isinstance(body, dict):
        raise _Stop(EXIT_FAILED, f"{endpoint} answered HTTP {status} with unexpected JSON")
    if status == 200 and isinstance(body.get("access_token"), str):
        return body
    code = body.get("error") if isinstance(body.get("error"), str) else f"HTTP {status}"
    description = body.get("error_description")
    detail = f": {description}" if isinstance(description, str) and description else ""
    raise _Stop(EXIT_FAILED, _printable(f"the gateway refused the token exchange ({code}){detail}"))


# -- after ---------------------------------------------------------------------------------


def _store(plan: _Plan, connection: str | None, token: str) -> None:
    try:
        if plan.destination == "print":
            print(token, flush=True)
        elif plan.destination == "pgpass":
            assert plan.path is not None and plan.pgpass_address is not None and connection
            host, port = plan.pgpass_address
            host = login_files.pgpass_host(host)
            login_files.write_pgpass(plan.path, host, port, connection, token)
        elif plan.destination == "kubeconfig":
            assert plan.path is not None and connection
            login_files.write_kubeconfig(plan.path, f"hoopd-{connection}", token)
        else:
            assert plan.path is not None
            login_files.write_token_file(plan.path, token)
    except login_files.LoginFileError as exc:
        raise _Stop(EXIT_FAILED, f"signed in, but {exc}") from None


def _report(
    plan: _Plan, connection: str | None, answer: dict[str, Any], subject_hint: str | None
) -> None:
    claims = _claims(answer["access_token"])
    who = claims.get("sub") or subject_hint or "(unknown)"
    groups = claims.get("groups")
    if isinstance(groups, list) and groups:
        who += f" (groups: {', '.join(str(g) for g in groups)})"
    _say(f"Signed in as {who} through {plan.issuer.name}.")
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        expires = time.time() + float(answer.get("expires_in", 0))
    when = dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    minutes = max(0, round((expires - time.time()) / 60))
    scope = answer.get("scope") or claims.get("scope") or "-"
    _say(f"Gateway token for {scope}; it expires {when} (in {minutes} min).")
    if plan.destination == "pgpass" and plan.pgpass_address is not None:
        host, port = plan.pgpass_address
        _say(
            f"Wrote its line for {host}:{port}, database {connection}, to {plan.path} (mode 0600)."
        )
    elif plan.destination == "kubeconfig":
        _say(f"Wrote the user entry to {plan.path} (mode 0600); merge it into your kubeconfig.")
    elif plan.destination == "file":
        _say(f"Wrote it to {plan.path} (mode 0600).")


def _claims(token: str) -> dict[str, Any]:
    """The unverified claims of a JWT, for messages only; empty if it is not one."""
    try:
        segment = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _printable(text: str) -> str:
    """``text`` with control characters (a terminal's escape sequences) replaced."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
