"""GET /v1/blast-radius on the admin API: what the caller's own token reaches."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import trio

from hoopd.approvals.api import AdminApi, ApiRequest
from hoopd.approvals.store import ApprovalStore
from hoopd.blast_radius_api import BLAST_RADIUS_PATH, blast_radius_route
from hoopd.config import config_from_dict
from hoopd.identity.tokens import StaticTokenVerifier
from hoopd.pipeline import Pipeline

READER = "hoopd_reader-token-for-tests-0000000000"
FAR = datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)


def _api(tmp_path: Path) -> AdminApi:
    target = {"host": "127.0.0.1", "port": 5432, "database": "app", "user": "u",
              "secret": {"env": "X"}}  # fmt: skip
    config = config_from_dict(
        {
            "gateway": {"data_dir": str(tmp_path)},
            "tokens": [
                {
                    "identity": "rita",
                    "sha256": hashlib.sha256(READER.encode()).hexdigest(),
                    "expires": FAR,
                    "scope": ["appdb:read"],
                }
            ],
            "connections": [
                {"name": "appdb", "listen": "127.0.0.1:6432", "target": target},
                {"name": "billing", "listen": "127.0.0.1:6433", "target": target},
            ],
        },
        tmp_path / "hoopd.toml",
    )
    route = blast_radius_route(config, Pipeline())
    return AdminApi(ApprovalStore.open(tmp_path), StaticTokenVerifier(config.tokens), [route])


def test_the_report_covers_what_the_callers_scope_reaches(tmp_path: Path) -> None:
    api = _api(tmp_path)
    headers = [("Authorization", f"Bearer {READER}")]
    response = trio.run(api.handle, ApiRequest("GET", BLAST_RADIUS_PATH, headers))
    assert response.status == 200
    report = response.body
    assert report["identity"]["subject"] == "rita"
    [appdb] = report["reach"]["connections"]
    assert (appdb["name"], appdb["granted"]) == ("appdb", "read")
    kinds = {k["kind"]: k["verdict"] for k in appdb["kinds"]}
    assert kinds["select"] == "allow"
    assert "insert" not in kinds and "drop" not in kinds
    assert report["unreachable"] == ["billing"]


def test_it_needs_a_bearer_token(tmp_path: Path) -> None:
    response = trio.run(_api(tmp_path).handle, ApiRequest("GET", BLAST_RADIUS_PATH))
    assert response.status == 401
