"""The digest that binds an approval to exactly one command.

An approval covers the command whose digest it was created with, and nothing else: the
gateway runs an approved command only if the digest of what it is about to send equals
the request's ``command_digest``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

# Bumped if the canonical form ever changes, so old and new digests never collide.
_FORM: tuple[str] = ("hoopd-approval-command/1",)


def command_digest(
    protocol: str,
    connection: str,
    command: str,
    parameters: Sequence[bytes | str | None] = (),
) -> str:
    """SHA-256 (hex) of a canonical form of what will run.

    The command text is taken byte for byte: no whitespace or case folding, since either
    could change a literal's meaning. Parameters keep their order and their kind (bytes,
    text or NULL), so ``'1'`` and ``b'1'`` and NULL and ``''`` all differ. The encoding
    is JSON of a list, so no choice of text can make two different inputs agree.
    """
    params = [
        None if p is None else ["b", p.hex()] if isinstance(p, bytes) else ["t", p]
        for p in parameters
    ]
    canonical = json.dumps(
        [*_FORM, protocol, connection, command, params],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
