"""How the PostgreSQL engine says "no": error messages in the client's protocol."""

from __future__ import annotations

from hoopd.pipeline import Refusal

from . import backend as be


def fatal(code: str, message: str, **fields: str) -> bytes:
    """A FATAL ErrorResponse: the client reports it and the connection ends."""
    return be.ErrorResponse.build(code, message, severity="FATAL", **fields).encode()


def error(code: str, message: str, **fields: str) -> bytes:
    return be.ErrorResponse.build(code, message, **fields).encode()


# SQLSTATEs the gateway itself answers with.
PROTOCOL_VIOLATION = "08P01"
CONNECTION_FAILURE = "08001"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
UNKNOWN_DATABASE = "3D000"
FEATURE_NOT_SUPPORTED = "0A000"
CANNOT_CONNECT_NOW = "57P03"
ADMIN_SHUTDOWN = "57P01"
IDLE_SESSION_TIMEOUT = "57P05"
INSUFFICIENT_RESOURCES = "53000"
INSUFFICIENT_PRIVILEGE = "42501"
SUCCESSFUL_COMPLETION = "00000"


def policy_refusal(refusal: Refusal) -> be.ErrorResponse:
    """The ERROR a client gets for a statement policy refused; the session goes on."""
    rule = f'rule "{refusal.rule}"' if refusal.rule else "the default for this connection"
    if refusal.action == "approve":
        detail = f"The statement needs approval under {rule} and does not have it;"
    elif refusal.action == "mask":
        detail = "Masking rules cover this session's results;"
    elif refusal.action == "scope":
        detail = "The token this session uses does not reach that far;"
    else:
        detail = f"The statement was refused by {rule};"
    return be.ErrorResponse.build(
        INSUFFICIENT_PRIVILEGE,
        f"hoopd: {refusal.message}",
        detail=f"{detail} it did not reach the database.",
    )
