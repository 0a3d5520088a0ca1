"""What the command-line tools share as clients of the gateway: reading the
caller's token, and POSTing a form to the admin API.

Guarantees: :func:`read_token` takes the token from ``HOOPD_TOKEN`` or standard
input, never the command line, and never echoes it. :func:`post_form` returns
``(HTTP status, JSON object)`` whenever the gateway answered with a JSON object
(error statuses included: their body says why), else a sentence saying what went
wrong; it never raises for network or HTTP trouble, and never puts the bearer
token in what it returns.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, Final
from urllib.parse import urlencode

HTTP_TIMEOUT_SECONDS: Final = 10.0
TOKEN_ENV: Final = "HOOPD_TOKEN"


def read_token() -> str:
    """The caller's token: ``$HOOPD_TOKEN``, else a line of standard input."""
    if TOKEN_ENV in os.environ:
        return os.environ[TOKEN_ENV].strip()
    # From a terminal, prompt without echo so the token does not end up on screen.
    line = getpass.getpass("Token: ") if sys.stdin.isatty() else sys.stdin.readline()
    return line.strip()


def post_form(
    url: str, path: str, form: dict[str, str], bearer: str | None = None
) -> tuple[int, dict[str, Any]] | str:
    """POST ``form`` (URL-encoded) to ``url`` + ``path``."""
    endpoint = url.rstrip("/") + path
    if not endpoint.startswith(("http://", "https://")):
        return f"--admin must be an http:// or https:// URL, not {url!r}"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(
        endpoint, data=urlencode(form).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return f"cannot reach {endpoint}: {getattr(exc, 'reason', exc)}"
    try:
        body = json.loads(raw)
    except ValueError:
        return f"{endpoint} answered HTTP {status} without JSON"
    if not isinstance(body, dict):
        return f"{endpoint} answered HTTP {status} with unexpected JSON"
    return status, body
