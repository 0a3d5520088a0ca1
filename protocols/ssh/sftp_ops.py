"""SFTP requests as the pipeline's host commands.

:class:`SftpOperations` follows one SFTP session: each client request that opens,
changes or removes something becomes a :class:`hoopd.events.HostCommand` with the
paths it touches (``sftp-read``, ``sftp-write``, ``sftp-list``, ``sftp-remove``,
``sftp-rename``, ``sftp-mkdir``, ``sftp-setstat``); reads, writes and listings on an
open handle are covered by the open that was judged, and lookups (``stat``,
``realpath``, ``readlink``) are not commands. Handles are bound to their paths from
the server's HANDLE answers, so ``fsetstat`` on a handle names its file.

OpenSSH's extensions are judged like the requests they resemble
(``posix-rename@openssh.com`` is ``sftp-rename``, ``hardlink@openssh.com``
``sftp-write``, ``lsetstat@openssh.com`` ``sftp-setstat``) or are lookups and
operations on handles already judged; any other extension is :meth:`unsupported`
(its effect is unknown, so the gateway answers it itself instead of letting it by).
"""

from __future__ import annotations

from hoopd.events import HostCommand

from . import sftp_wire as w

_WRITE_FLAGS = w.FXF_WRITE | w.FXF_APPEND | w.FXF_CREAT | w.FXF_TRUNC

_PATH_KINDS = {
    w.OPENDIR: ("sftp-list", "list"),
    w.REMOVE: ("sftp-remove", "remove"),
    w.RMDIR: ("sftp-remove", "remove directory"),
    w.MKDIR: ("sftp-mkdir", "make directory"),
    w.SETSTAT: ("sftp-setstat", "set attributes of"),
}


_HARMLESS_EXTENSIONS = frozenset(
    {
        "statvfs@openssh.com", "fstatvfs@openssh.com", "fsync@openssh.com",
        "limits@openssh.com", "expand-path@openssh.com", "home-directory",
        "users-groups-by-id@openssh.com",
        # Copies between two handles, each opened (and judged) for its direction.
        "copy-data",
    }
)  # fmt: skip


class SftpOperations:
    """The handle table of one SFTP session, and its requests as commands."""

    def __init__(self) -> None:
        self._opening: dict[int, str] = {}
        self._handles: dict[bytes, str] = {}

    def command_for(self, packet: w.Packet) -> HostCommand | None:
        """The command a client packet carries, or None (forwarded without asking)."""
        if isinstance(packet, w.OpenRequest):
            writes = bool(packet.pflags & _WRITE_FLAGS)
            kind, verb = ("sftp-write", "write") if writes else ("sftp-read", "read")
            return HostCommand(kind, f"open {packet.path} for {verb}", paths=(packet.path,))
        if isinstance(packet, w.PathRequest) and packet.type in _PATH_KINDS:
            kind, verb = _PATH_KINDS[packet.type]
            return HostCommand(kind, f"{verb} {packet.path}", paths=(packet.path,))
        if isinstance(packet, w.TwoPathRequest):
            if packet.type == w.RENAME:
                text = f"rename {packet.path} to {packet.other}"
                return HostCommand("sftp-rename", text, paths=(packet.path, packet.other))
            text = f"symlink {packet.path} to {packet.other}"
            return HostCommand("sftp-write", text, paths=(packet.path, packet.other))
        if isinstance(packet, w.ExtendedRequest):
            return _extension_command(packet)
        if isinstance(packet, w.HandleRequest) and packet.type == w.FSETSTAT:
            path = self._handles.get(packet.handle, "")
            return HostCommand("sftp-setstat", f"set attributes of {path}", paths=(path,))
        return None

    def unsupported(self, packet: w.Packet) -> bool:
        """Whether the gateway must answer ``packet`` itself (an extension it
        cannot judge) instead of forwarding it."""
        if not isinstance(packet, w.ExtendedRequest):
            return False
        return packet.name not in _HARMLESS_EXTENSIONS and _extension_command(packet) is None

    def forwarded(self, packet: w.Packet, paths: tuple[str, ...] = ()) -> None:
        """Note a client packet that goes on to the server; ``paths``: its command's,
        as judged (resolved), which a handle it opens is then bound to."""
        opened = paths[0] if paths else getattr(packet, "path", "")
        if isinstance(packet, w.OpenRequest) and packet.request_id is not None:
            self._opening[packet.request_id] = opened
        elif isinstance(packet, w.PathRequest) and packet.type == w.OPENDIR:
            if packet.request_id is not None:
                self._opening[packet.request_id] = opened
        elif isinstance(packet, w.HandleRequest) and packet.type == w.CLOSE:
            self._handles.pop(packet.handle, None)

    def answered(self, packet: w.Packet) -> None:
        """Note a server packet: a HANDLE binds its handle to the path that was opened."""
        if packet.request_id is None:
            return
        path = self._opening.pop(packet.request_id, None)
        if path is not None and isinstance(packet, w.HandleReply):
            self._handles[packet.handle] = path


def _extension_command(packet: w.ExtendedRequest) -> HostCommand | None:
    paths = packet.paths
    if packet.name == "posix-rename@openssh.com":
        return HostCommand("sftp-rename", f"rename {paths[0]} to {paths[1]}", paths=paths)
    if packet.name == "hardlink@openssh.com":
        return HostCommand("sftp-write", f"hardlink {paths[1]} to {paths[0]}", paths=paths)
    if packet.name == "lsetstat@openssh.com":
        return HostCommand("sftp-setstat", f"set attributes of {paths[0]}", paths=paths)
    return None
