"""The admin API's answers, called directly (no sockets): who gets what, and which
status code says why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from hoopd.approvals import AdminApi, ApiRequest, ApiResponse, ApprovalRequest, ApprovalStore
from hoopd.config import TokenConfig
from hoopd.identity.tokens import StaticTokenVerifier, token_sha256
from tests.unit.test_approvals_support import GROUPS, TOKENS, new_request


@pytest.fixture
def store(tmp_path: Path) -> ApprovalStore:
    return ApprovalStore.open(tmp_path)


@pytest.fixture
def api(store: ApprovalStore) -> AdminApi:
    tokens = [TokenConfig(name, GROUPS[name], token_sha256(t)) for name, t in TOKENS.items()]
    return AdminApi(store, StaticTokenVerifier(tokens))


@pytest.fixture
def request_(store: ApprovalStore) -> ApprovalRequest:
    return new_request(store)


def call(
    api: AdminApi, method: str, target: str, who: str | None, body: bytes = b""
) -> ApiResponse:
    headers = [("Authorization", f"Bearer {TOKENS[who]}")] if who else []
    response = trio.run(api.handle, ApiRequest(method, target, headers, body))
    json.loads(response.encoded())  # every answer is JSON
    return response


def test_every_endpoint_needs_a_valid_bearer_token(
    api: AdminApi, store: ApprovalStore, request_: ApprovalRequest
) -> None:
    for method, target in [
        ("GET", "/v1/approvals"),
        ("GET", f"/v1/approvals/{request_.id}"),
        ("POST", f"/v1/approvals/{request_.id}/approve"),
        ("GET", "/elsewhere"),
    ]:
        missing = call(api, method, target, None)
        assert missing.status == 401
        assert ("www-authenticate", 'Bearer realm="hoopd"') in missing.headers
        for auth in ["Bearer hoopd_not-a-token", f"Basic {TOKENS['bob']}", "Bearer"]:
            wrong = trio.run(api.handle, ApiRequest(method, target, [("authorization", auth)]))
            assert (wrong.status, wrong.body) == (401, {"error": "the bearer token is not valid"})
    assert store.get(request_.id) == request_  # nothing was decided


def test_the_list_shows_pending_requests_to_approvers_and_the_requester(
    api: AdminApi, store: ApprovalStore, request_: ApprovalRequest
) -> None:
    for_security = new_request(store, approver_groups=("security",))

    bob = call(api, "GET", "/v1/approvals", "bob")
    alice = call(api, "GET", "/v1/approvals", "alice")
    dave = call(api, "GET", "/v1/approvals?ignored=1", "dave")

    assert bob.status == 200
    [shown] = bob.body["approvals"]
    assert shown["id"] == request_.id
    assert (shown["requester"], shown["command"], shown["status"]) == (
        "alice",
        request_.command,
        "pending",
    )
    assert [r["id"] for r in alice.body["approvals"]] == [request_.id, for_security.id]
    assert dave.body == {"approvals": []}


def test_one_request_by_id(api: AdminApi, request_: ApprovalRequest) -> None:
    found = call(api, "GET", f"/v1/approvals/{request_.id.upper()}", "carol")
    assert (found.status, found.body["id"], found.body["min_approvals"]) == (200, request_.id, 1)
    # Someone who may not see it is told exactly what an unknown id gets.
    hidden = call(api, "GET", f"/v1/approvals/{request_.id}", "dave")
    unknown = call(api, "GET", "/v1/approvals/zzzzzzzzzz", "dave")
    assert (hidden.status, unknown.status) == (404, 404)
    assert hidden.body["error"].replace(request_.id, "X") == unknown.body["error"].replace(
        "zzzzzzzzzz", "X"
    )


def test_approve_and_the_codes_that_follow(api: AdminApi, request_: ApprovalRequest) -> None:
    path = f"/v1/approvals/{request_.id}"

    own = call(api, "POST", f"{path}/approve", "alice")
    outsider = call(api, "POST", f"{path}/approve", "dave")
    approved = call(api, "POST", f"{path}/approve", "bob", b'{"reason": "ticket OPS-12"}')
    again = call(api, "POST", f"{path}/approve", "carol")

    assert own.status == 403 and "their own" in own.body["error"]
    assert outsider.status == 403 and "needs a member of dba" in outsider.body["error"]
    assert approved.status == 200
    assert (approved.body["status"], approved.body["decisions"][0]["reason"]) == (
        "approved",
        "ticket OPS-12",
    )
    assert again.status == 409 and "no longer pending" in again.body["error"]


def test_a_second_approval_by_the_same_person_conflicts(
    api: AdminApi, store: ApprovalStore
) -> None:
    request = new_request(store, min_approvals=2)
    assert call(api, "POST", f"/v1/approvals/{request.id}/approve", "bob").status == 200
    twice = call(api, "POST", f"/v1/approvals/{request.id}/approve", "bob")
    assert twice.status == 409 and "each approver counts once" in twice.body["error"]


def test_deny_needs_a_reason_in_a_json_body(api: AdminApi, request_: ApprovalRequest) -> None:
    path = f"/v1/approvals/{request_.id}/deny"
    bad = {
        b"": "a deny needs a reason",
        b'{"reason": ""}': "a deny needs a reason",
        b"{reason: no}": "not valid JSON",
        b'["no"]': "must be a JSON object",
        b'{"reason": 3}': "reason must be a string",
        b'{"reason": "x", "force": true}': "unknown key in body: 'force'",
        b"\xff": "not valid JSON",
    }
    for body, message in bad.items():
        answer = call(api, "POST", path, "bob", body)
        assert answer.status == 400 and message in answer.body["error"], body

    denied = call(api, "POST", path, "bob", b'{"reason": "use the replica"}')
    assert (denied.status, denied.body["resolution"]) == (200, "denied by bob: use the replica")


def test_unknown_paths_and_wrong_methods(api: AdminApi, request_: ApprovalRequest) -> None:
    assert call(api, "GET", "/v1/other", "bob").status == 404
    assert call(api, "POST", "/v1/approvals/zzzzzzzzzz/approve", "bob").status == 404
    assert call(api, "POST", f"/v1/approvals/{request_.id}/maybe", "bob").status == 404
    wrong = call(api, "DELETE", f"/v1/approvals/{request_.id}", "bob")
    assert (wrong.status, wrong.headers) == (405, (("allow", "GET"),))
    assert call(api, "GET", f"/v1/approvals/{request_.id}/approve", "bob").status == 405
    assert call(api, "POST", "/v1/approvals", "bob").status == 405
