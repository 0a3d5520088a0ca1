"""Session recording: the journal every session and statement is written to first,
its index, and the read side (listing, replay, verification).

docs/recording.md describes the format and what is guaranteed.
"""

from hoopd.recording.errors import RecorderError
from hoopd.recording.frames import Record
from hoopd.recording.journal import Journal, SessionRecorder
from hoopd.recording.reader import list_sessions, read_session
from hoopd.recording.summary import SessionSummary
from hoopd.recording.verify import Break, VerifyReport, verify

__all__ = [
    "Break",
    "Journal",
    "Record",
    "RecorderError",
    "SessionRecorder",
    "SessionSummary",
    "VerifyReport",
    "list_sessions",
    "read_session",
    "verify",
]
