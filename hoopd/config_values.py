"""Checks of single configuration values: names, token hashes, environment variable
names, listen addresses and webhook URLs.

Each ``check_*`` function returns None for a good value and otherwise the message a
user is told, as :class:`hoopd.config_table.Table` getters take it. A message quotes
the value only in the shortened form of :func:`hoopd.config_table.shown`, and not at
all where it may hold a secret (a pasted token, a webhook URL's path).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

from hoopd.config_identity import is_loopback_host
from hoopd.config_table import shown

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


def check_name(value: str) -> str | None:
    if _NAME_RE.fullmatch(value):
        return None
    return f"may contain only letters, digits, '_', '.' and '-' (got {shown(value)})"


def check_sha256(value: str) -> str | None:
    if _SHA256_RE.fullmatch(value):
        return None
    # Not shown: someone may have pasted the token itself here.
    return (
        "must be 64 lowercase hex characters, the SHA-256 of the token as printed by"
        f" `hoopd token hash` (got {len(value)} characters, not shown)"
    )


def check_env_name(value: str) -> str | None:
    if "=" in value or "\0" in value:
        return f"is not a valid environment variable name (got {shown(value)})"
    return None


def check_loopback_listen(value: str) -> str | None:
    (host, _), error = parse_listen(value)
    if error:
        return error
    if is_loopback_host(host):
        return None
    # The admin API speaks plain HTTP and carries bearer tokens.
    return (
        "must be a loopback address such as 127.0.0.1:8433, because the admin API speaks"
        f" plain HTTP and carries tokens (got {shown(value)})"
    )


def check_webhook_url(value: str) -> str | None:
    try:
        parsed = urlsplit(value)
        usable = parsed.scheme in ("http", "https") and bool(parsed.hostname) and parsed.port != 0
    except ValueError:  # a bad port or bracketed host
        usable = False
    if usable:
        return None
    # Not shown: a webhook URL often carries a secret in its path (Slack's do).
    return "must be an http:// or https:// URL with a host (value not shown)"


def parse_listen(text: str) -> tuple[tuple[str, int], str | None]:
    """``(host, port), None`` or a placeholder and the error message."""
    bad = ("", 0), f"must be host:port such as 127.0.0.1:6432 or [::1]:6432 (got {shown(text)})"
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            return bad
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return ("", 0), f"{shown(host)} in brackets is not an IPv6 address"
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            return ("", 0), f"an IPv6 address needs brackets, as in [::1]:6432 (got {shown(text)})"
        if not sep or not host or any(ch.isspace() for ch in host):
            return bad
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        return ("", 0), f"port must be a number from 0 to 65535 (got {shown(port_text)})"
    return (host, int(port_text)), None
