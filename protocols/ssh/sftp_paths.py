"""Where the paths of an SFTP operation really point on the target, for policy.

A path is judged as the target will resolve it, not as the client wrote it: the
target's own sftp-server resolves it (``REALPATH``: ``..``, ``.``, repeated
slashes, symbolic links, a relative path against the login's home directory), on
an SFTP channel the gateway opens for itself on the session's upstream connection
(never inside the client's channel, whose request ids belong to the client). A
path that does not exist yet (a file or directory being created) is its parent so
resolved, plus its last component; if the parent does not exist either, the path is
resolved lexically against the home directory (the operation then fails on the
target anyway).

Guarantees: :meth:`PathResolver.resolve` returns an absolute path with no ``.`` or
``..`` components, or raises :class:`PathsUnknown` (the operation must then be
refused: fail closed). What it cannot promise: the target's files may change
between the check and the operation (a symbolic link swapped in between is not
seen); a policy on paths is as strong as the target's own permissions make it.
"""

from __future__ import annotations

import posixpath

import asyncssh

_ENCODING = ("utf-8", "surrogateescape")  # as sftp_wire decodes paths: any byte survives


class PathsUnknown(Exception):
    """The target could not say where a path points."""


class PathResolver:
    """Resolves paths on one upstream connection; opens its SFTP channel on first use."""

    def __init__(self, upstream: asyncssh.SSHClientConnection) -> None:
        self._upstream = upstream
        self._sftp: asyncssh.SFTPClient | None = None
        self._home = ""

    async def resolve(self, path: str) -> str:
        """(asyncio) The absolute, resolved form of ``path``. Raises PathsUnknown."""
        sftp = await self._client()
        try:
            return await self._realpath(sftp, path or ".")
        except asyncssh.SFTPError:
            pass
        parent, name = posixpath.split(path.rstrip("/") or "/")
        if name in ("", ".", ".."):
            return self._lexical(path)
        try:
            return posixpath.join(await self._realpath(sftp, parent or "."), name)
        except asyncssh.SFTPError:
            return self._lexical(path)

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            try:
                sftp = await self._upstream.start_sftp_client()
                self._home = await self._realpath(sftp, ".")
            except (asyncssh.Error, OSError) as exc:
                raise PathsUnknown(f"the target's sftp-server cannot resolve paths: {exc}") from exc
            self._sftp = sftp
        return self._sftp

    @staticmethod
    async def _realpath(sftp: asyncssh.SFTPClient, path: str) -> str:
        try:
            resolved = await sftp.realpath(path.encode(*_ENCODING))
        except (asyncssh.ConnectionLost, asyncssh.ChannelOpenError, OSError) as exc:
            raise PathsUnknown(f"the target's sftp-server went away: {exc}") from exc
        assert isinstance(resolved, bytes)  # bytes in, bytes out (FXRP_NO_CHECK)
        text = resolved.decode(*_ENCODING)
        if not text.startswith("/"):
            raise PathsUnknown(f"the target answered a relative path for {path!r}")
        return posixpath.normpath(text)

    def _lexical(self, path: str) -> str:
        joined = posixpath.normpath(posixpath.join(self._home, path))
        # normpath keeps a leading "//"; one slash is the same directory.
        return "/" + joined.lstrip("/")
