"""The ``[approvals]`` section of hoopd.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hoopd.config import ApprovalsConfig, ConfigError, config_from_dict


def config(approvals: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"gateway": {"data_dir": "/var/lib/hoopd"}}
    if approvals is not None:
        data["approvals"] = approvals
    return data


def problems(approvals: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(config(approvals), Path("hoopd.toml"))
    return list(info.value.problems)


def test_without_the_section_there_is_no_api_and_no_webhook() -> None:
    cfg = config_from_dict(config(), Path("hoopd.toml"))
    assert cfg.approvals == ApprovalsConfig(None, None, "json", 300.0)


def test_every_key() -> None:
    cfg = config_from_dict(
        config(
            {
                "admin_listen": "127.0.0.1:8433",
                "webhook_url": "https://hooks.slack.com/services/T0/B0/secret",
                "webhook_format": "slack",
                "default_deadline_seconds": 120,
            }
        ),
        Path("hoopd.toml"),
    )
    assert cfg.approvals == ApprovalsConfig(
        ("127.0.0.1", 8433), "https://hooks.slack.com/services/T0/B0/secret", "slack", 120.0
    )
    ipv6 = config_from_dict(config({"admin_listen": "[::1]:0"}), Path("hoopd.toml"))
    assert ipv6.approvals.admin_listen == ("::1", 0)


def test_the_admin_api_listens_on_loopback_only() -> None:
    [message] = problems({"admin_listen": "0.0.0.0:8433"})
    assert message.startswith("hoopd.toml: approvals.admin_listen: must be a loopback address")
    assert problems({"admin_listen": "8433"}) == [
        "hoopd.toml: approvals.admin_listen: must be host:port such as 127.0.0.1:6432 or"
        " [::1]:6432 (got '8433')"
    ]


def test_bad_values_are_each_reported_and_a_webhook_url_is_never_echoed() -> None:
    found = problems(
        {
            "webhook_url": "ftp://hooks.example.com/secret-path",
            "webhook_format": "xml",
            "default_deadline_seconds": 0,
            "admin_listn": "127.0.0.1:1",
        }
    )
    assert found == [
        "hoopd.toml: approvals.webhook_url: must be an http:// or https:// URL with a host"
        " (value not shown)",
        "hoopd.toml: approvals.webhook_format: must be one of json, slack (got 'xml')",
        "hoopd.toml: approvals.default_deadline_seconds: must be a finite number more than zero"
        " (got 0)",
        "hoopd.toml: approvals.admin_listn: unknown key",
    ]
