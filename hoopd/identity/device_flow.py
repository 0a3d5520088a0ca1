"""The client side of getting an access token from an OpenID Connect provider: the
device authorization grant (RFC 8628) for a person at a terminal, and the client
credentials grant for machines.

Synchronous and blocking (it runs in a CLI, not under trio). Every endpoint must be
https, or http to a loopback address; every failure the provider or the network
reports is raised as one :class:`DeviceFlowError` whose message says what happened
(never a secret, never a token).
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hoopd.identity.http_json import request_json

DEVICE_CODE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL_SECONDS: Final = 5.0  # RFC 8628 section 3.2
SLOW_DOWN_SECONDS: Final = 5.0  # RFC 8628 section 3.5


class DeviceFlowError(Exception):
    """Getting a token failed. ``error`` is the OAuth error code when the provider
    sent one (``access_denied``, ``expired_token``, ...), else None."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """A device authorization response: show ``user_code`` and ``verification_uri``
    (or ``verification_uri_complete``) to the user, then poll with ``device_code``."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: float
    expires_in: float


def discover(issuer_url: str, ca_file: Path | None = None) -> dict[str, Any]:
    """The issuer's discovery document; its ``issuer`` must equal ``issuer_url``."""
    url = issuer_url.rstrip("/") + "/.well-known/openid-configuration"
    document = _call(url, None, ca_file, "discovery")
    if document.get("issuer") != issuer_url:
        raise DeviceFlowError(
            f"the discovery document at {url} names issuer {document.get('issuer')!r},"
            f" not {issuer_url!r}"
        )
    return document


def start_device_flow(
    discovery: Mapping[str, Any], client_id: str, scope: str, *, ca_file: Path | None = None
) -> DeviceCode:
    """Ask the provider for a device code (RFC 8628 section 3.1)."""
    endpoint = _endpoint(discovery, "device_authorization_endpoint")
    answer = _call(endpoint, {"client_id": client_id, "scope": scope}, ca_file, "device auth")
    try:
        interval = float(answer.get("interval", DEFAULT_INTERVAL_SECONDS))
        complete = answer.get("verification_uri_complete")
        return DeviceCode(
            device_code=_text(answer, "device_code"),
            user_code=_text(answer, "user_code"),
            verification_uri=_text(answer, "verification_uri"),
            verification_uri_complete=complete if isinstance(complete, str) else None,
            interval=max(interval, 1.0),
            expires_in=float(answer["expires_in"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeviceFlowError(f"the device authorization response is incomplete: {exc}") from exc


def poll_for_token(
    discovery: Mapping[str, Any],
    client_id: str,
    device_code: str,
    interval: float,
    deadline: float,
    sleep: Callable[[float], object] = time.sleep,
    *,
    clock: Callable[[], float] = time.monotonic,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """Poll the token endpoint until the user has decided (RFC 8628 section 3.4).

    Polls at once, then every ``interval`` seconds (5 more after each ``slow_down``)
    until ``deadline`` (a ``clock()`` value, by default ``time.monotonic()``). Returns
    the token response (it holds ``access_token``). Raises :class:`DeviceFlowError`
    when the user denied (``access_denied``), the code expired (``expired_token``,
    also when ``deadline`` passes) or the provider reported another error.
    """
    endpoint = _endpoint(discovery, "token_endpoint")
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": client_id}
    while True:
        if clock() >= deadline:
            raise DeviceFlowError("the device code expired before it was approved", "expired_token")
        status, answer = _request(endpoint, form, ca_file, "token")
        error = answer.get("error")
        if status == 200 and error is None:
            return _token_response(answer)
        if error == "authorization_pending":
            pass
        elif error == "slow_down":
            interval += SLOW_DOWN_SECONDS
        elif error == "access_denied":
            raise DeviceFlowError("the request was denied at the provider", error)
        elif error == "expired_token":
            raise DeviceFlowError("the device code expired before it was approved", error)
        else:
            raise _oauth_error(answer, status, "token")
        sleep(interval)


def client_credentials_token(
    discovery: Mapping[str, Any],
    client_id: str,
    client_secret: str,
    resource_or_audience: str | None = None,
    *,
    scope: str | None = None,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """A token for a machine (RFC 6749 section 4.4), the client authenticated with
    HTTP Basic (which every provider must support).

    ``resource_or_audience`` is sent both as ``resource`` (RFC 8707) and as
    ``audience`` (the parameter some providers use instead); providers ignore the
    one they do not know.
    """
    endpoint = _endpoint(discovery, "token_endpoint")
    form = {"grant_type": "client_credentials"}
    if resource_or_audience is not None:
        form["resource"] = form["audience"] = resource_or_audience
    if scope is not None:
        form["scope"] = scope
    # RFC 6749 section 2.3.1: each part is form-encoded before base64.
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
    basic = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    status, answer = _request(endpoint, form, ca_file, "token", {"Authorization": basic})
    if status != 200 or "error" in answer:
        raise _oauth_error(answer, status, "token")
    return _token_response(answer)


def _endpoint(discovery: Mapping[str, Any], name: str) -> str:
    url = discovery.get(name)
    if not isinstance(url, str) or not url:
        raise DeviceFlowError(f"the provider's discovery document has no {name}")
    return url


def _call(
    url: str, form: Mapping[str, str] | None, ca_file: Path | None, what: str
) -> dict[str, Any]:
    status, answer = _request(url, form, ca_file, what)
    if status != 200 or "error" in answer:
        raise _oauth_error(answer, status, what)
    return answer


def _request(
    url: str,
    form: Mapping[str, str] | None,
    ca_file: Path | None,
    what: str,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    try:
        status, answer = request_json(url, ca_file=ca_file, form=form, headers=headers)
    except (OSError, ValueError) as exc:
        raise DeviceFlowError(f"{what} request to {url} failed: {exc}") from exc
    if not isinstance(answer, dict):
        raise DeviceFlowError(f"{what} request to {url}: the answer is not a JSON object")
    return status, answer


def _oauth_error(answer: Mapping[str, Any], status: int, what: str) -> DeviceFlowError:
    error = answer.get("error")
    description = answer.get("error_description")
    detail = f": {description}" if isinstance(description, str) else ""
    code = error if isinstance(error, str) else None
    return DeviceFlowError(f"{what} request refused (HTTP {status}, {code}){detail}", code)


def _token_response(answer: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(answer.get("access_token"), str):
        raise DeviceFlowError("the token response holds no access_token")
    return answer


def _text(answer: Mapping[str, Any], name: str) -> str:
    value = answer[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is not text")
    return value
