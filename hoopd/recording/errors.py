"""The one exception the recorder lets escape to the gateway."""

from __future__ import annotations


class RecorderError(Exception):
    """A record could not be written, so the statement it describes must not run.

    ``str(error)`` is always the fixed text ``session recording is unavailable``:
    it is safe to show to a client and never carries paths, errno text or record
    contents. The underlying cause is chained (``__cause__``) and logged.
    """

    CLIENT_MESSAGE = "session recording is unavailable"

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.CLIENT_MESSAGE)
        #: What went wrong, for logs and operators (not for clients).
        self.reason = reason
