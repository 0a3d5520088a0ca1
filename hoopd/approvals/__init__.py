"""Just-in-time human approval: a command a policy sends for approval waits here until
enough approvers say yes, one says no, its deadline passes or its client goes away.

The pieces: :class:`ApprovalStore` (requests in SQLite in the data directory, shared by
every process using it), :func:`wait_for_decision` (the gateway's wait), the
``hoopd approvals|approve|deny`` commands, the admin HTTP API
(:func:`serve_admin_api`) and webhooks (:func:`notify`). docs/approvals.md describes
them as a user sees them.
"""

from hoopd.approvals.api import AdminApi, ApiRequest, ApiResponse
from hoopd.approvals.digest import command_digest
from hoopd.approvals.model import ApprovalError, ApprovalRequest, Decision, Status
from hoopd.approvals.server import serve_admin_api
from hoopd.approvals.store import ApprovalStore
from hoopd.approvals.wait import wait_for_decision
from hoopd.approvals.webhook import announce, notify

__all__ = [
    "AdminApi",
    "ApiRequest",
    "ApiResponse",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalStore",
    "Decision",
    "Status",
    "announce",
    "command_digest",
    "notify",
    "serve_admin_api",
    "wait_for_decision",
]
