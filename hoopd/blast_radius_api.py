"""``GET /v1/blast-radius`` on the admin API: the blast radius of the caller's own
bearer token, under the policy in force, as :func:`hoopd.blast_radius.to_json`
writes it. Holding a token is all it takes to ask what that token reaches."""

from __future__ import annotations

from typing import Final

from hoopd.approvals.api import ApiRequest, ApiResponse, Route
from hoopd.blast_radius import blast_radius, to_json
from hoopd.config import GatewayConfig
from hoopd.identity.base import Identity
from hoopd.pipeline import Pipeline

BLAST_RADIUS_PATH: Final = "/v1/blast-radius"


def blast_radius_route(config: GatewayConfig, pipeline: Pipeline) -> Route:
    """The route; the policy is read from ``pipeline`` per request (it may reload)."""

    async def answer(request: ApiRequest, caller: Identity | None) -> ApiResponse:
        assert caller is not None  # an authenticated route
        report = blast_radius(
            caller, config.connections, pipeline.policy, config.identity.max_chain_depth
        )
        return ApiResponse(200, to_json(report))

    return Route("GET", BLAST_RADIUS_PATH, answer)
