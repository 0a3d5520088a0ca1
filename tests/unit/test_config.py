"""The configuration file: what a valid file turns into, and what a user is told
about an invalid one."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hoopd.config import (
    ConfigError,
    GatewayConfig,
    SecretRef,
    check_secrets,
    config_from_dict,
    load_config,
)

HASH_A = "a" * 64
FAR_FUTURE = datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)
HASH_B = "0123456789abcdef" * 4

FULL_TOML = f"""
[gateway]
data_dir = "state"
log_level = "debug"
startup_timeout_seconds = 5
auth_failure_delay_seconds = 0.25
connect_timeout_seconds = 2.5
max_message_bytes = 1048576

[client_tls]
cert_file = "/etc/hoopd/tls.crt"
key_file = "tls/server.key"
allow_plaintext_on_loopback = true

[recording]
durability = "power-loss"

[[tokens]]
identity = "alice"
groups = ["dba", "oncall"]
sha256 = "{HASH_A}"
expires = 2099-01-01T00:00:00Z

[[tokens]]
identity = "ci"
sha256 = "{HASH_B}"
expires = 2099-01-01T00:00:00Z

[[connections]]
name = "appdb"
protocol = "postgres"
listen = "127.0.0.1:6432"
labels = {{ env = "prod", team = "payments" }}
  [connections.target]
  host = "db.internal"
  port = 5433
  database = "app"
  user = "app_rw"
  secret = {{ env = "APPDB_PASSWORD" }}
  tls = "verify-full"
  ca_file = "db-ca.pem"
  server_name = "db.example.com"

[[connections]]
name = "reports.v2"
listen = "[::1]:6432"
  [connections.target]
  host = "10.0.0.7"
  port = 5432
  database = "reports"
  user = "ro"
  secret = {{ file = "/etc/hoopd/reports.password" }}
"""


def minimal() -> dict[str, Any]:
    """The smallest useful configuration, as parsed TOML."""
    return {
        "gateway": {"data_dir": "/var/lib/hoopd"},
        "tokens": [{"identity": "alice", "sha256": HASH_A, "expires": FAR_FUTURE}],
        "connections": [
            {
                "name": "appdb",
                "listen": "127.0.0.1:6432",
                "target": {
                    "host": "127.0.0.1",
                    "port": 5432,
                    "database": "app",
                    "user": "app_rw",
                    "secret": {"env": "APPDB_PASSWORD"},
                },
            }
        ],
    }


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, Path("hoopd.toml"))
    assert str(info.value) == "\n".join(info.value.problems)
    return list(info.value.problems)


def test_full_example_parses_to_the_right_values(tmp_path: Path) -> None:
    path = tmp_path / "hoopd.toml"
    path.write_text(FULL_TOML)

    cfg = load_config(path)

    assert cfg.source == path
    assert cfg.data_dir == tmp_path / "state"
    assert cfg.log_level == "debug"
    assert cfg.startup_timeout_seconds == 5.0
    assert cfg.auth_failure_delay_seconds == 0.25
    assert cfg.connect_timeout_seconds == 2.5
    assert cfg.max_message_bytes == 1048576
    assert cfg.client_tls.cert_file == Path("/etc/hoopd/tls.crt")
    assert cfg.client_tls.key_file == tmp_path / "tls" / "server.key"
    assert cfg.client_tls.allow_plaintext_on_loopback is True
    assert cfg.recording.durability == "power-loss"
    assert [(t.identity, t.groups, t.sha256) for t in cfg.tokens] == [
        ("alice", ("dba", "oncall"), HASH_A),
        ("ci", (), HASH_B),
    ]

    app, reports = cfg.connections
    assert (app.name, app.protocol, app.listen_address) == (
        "appdb",
        "postgres",
        ("127.0.0.1", 6432),
    )
    assert dict(app.labels) == {"env": "prod", "team": "payments"}
    t = app.target
    assert (t.host, t.port, t.database, t.user) == ("db.internal", 5433, "app", "app_rw")
    assert t.secret == SecretRef(env="APPDB_PASSWORD")
    assert (t.tls, t.ca_file, t.server_name) == (
        "verify-full",
        tmp_path / "db-ca.pem",
        "db.example.com",
    )

    assert reports.listen_address == ("::1", 6432)
    assert reports.protocol == "postgres"
    assert dict(reports.labels) == {}
    assert reports.target.secret == SecretRef(file=Path("/etc/hoopd/reports.password"))
    assert (reports.target.tls, reports.target.ca_file, reports.target.server_name) == (
        "require",
        None,
        None,
    )


def test_defaults_for_everything_optional() -> None:
    cfg = config_from_dict({"gateway": {"data_dir": "/var/lib/hoopd"}}, Path("/etc/hoopd.toml"))

    assert cfg.data_dir == Path("/var/lib/hoopd")
    assert cfg.log_level == "info"
    assert cfg.startup_timeout_seconds == 10.0
    assert cfg.auth_failure_delay_seconds == 0.5
    assert cfg.connect_timeout_seconds == 10.0
    assert cfg.max_message_bytes == 128 * 1024 * 1024
    assert cfg.client_tls.cert_file is None and cfg.client_tls.key_file is None
    assert cfg.client_tls.allow_plaintext_on_loopback is False
    assert cfg.recording.durability == "process-crash"
    assert cfg.tokens == () and cfg.connections == ()


def test_config_is_immutable_and_hashable() -> None:
    cfg = config_from_dict(minimal(), Path("hoopd.toml"))
    conn = cfg.connections[0]

    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        conn.labels["env"] = "dev"  # type: ignore[index]
    assert hash(conn) == hash(config_from_dict(minimal(), Path("hoopd.toml")).connections[0])


def test_several_connections_may_share_a_listen_address() -> None:
    data = minimal()
    second = copy.deepcopy(data["connections"][0])
    second["name"] = "other"
    data["connections"].append(second)

    cfg = config_from_dict(data, Path("hoopd.toml"))

    assert [c.listen_address for c in cfg.connections] == [("127.0.0.1", 6432)] * 2


def test_message_names_file_key_and_problem_exactly() -> None:
    data = minimal()
    data["connections"][0]["target"]["tls"] = "yes"

    assert problems_of(data) == [
        "hoopd.toml: connections[0].target.tls: must be one of disable, require,"
        " verify-full (got 'yes')"
    ]


def test_load_config_names_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "hoopd.toml"
    path.write_text('[gateway]\ndata_dir = "/x"\ncolour = "red"\n')

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(info.value) == f"{path}: gateway.colour: unknown key"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to `minimal()`: set (or, with value ..., delete) a dotted key."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return change


ERROR_CASES = [
    # (change, key path, words of the problem)
    (_set("colour", "red"), "colour", "unknown key"),
    (_set("gateway.colour", "red"), "gateway.colour", "unknown key"),
    (_set("client_tls", {"cert": "x"}), "client_tls.cert", "unknown key"),
    (_set("recording", {"fsync": True}), "recording.fsync", "unknown key"),
    (_set("tokens.0.group", ["x"]), "tokens[0].group", "unknown key"),
    (_set("connections.0.port", 1), "connections[0].port", "unknown key"),
    (_set("connections.0.target.password", "x"), "connections[0].target.password", "unknown key"),
    (
        _set("connections.0.target.secret", {"value": "x"}),
        "connections[0].target.secret.value",
        "unknown key",
    ),
    (
        _set("gateway.log_level", "loud"),
        "gateway.log_level",
        "must be one of debug, info, warning, error (got 'loud')",
    ),
    (
        _set("recording", {"durability": "fsync"}),
        "recording.durability",
        "must be one of process-crash, power-loss (got 'fsync')",
    ),
    (
        _set("connections.0.protocol", "mysql"),
        "connections[0].protocol",
        "must be one of postgres, ssh (got 'mysql')",
    ),
    (_set("gateway", ...), "gateway", "missing (required)"),
    (_set("gateway.data_dir", ...), "gateway.data_dir", "missing (required)"),
    (_set("tokens.0.sha256", ...), "tokens[0].sha256", "missing (required)"),
    (_set("connections.0.target", ...), "connections[0].target", "missing (required)"),
    (_set("connections.0.target.user", ...), "connections[0].target.user", "missing (required)"),
    (
        _set("connections.0.target.secret", ...),
        "connections[0].target.secret",
        "missing (required)",
    ),
    (
        _set("connections.0.target.secret", {}),
        "connections[0].target.secret",
        "exactly one of env and file",
    ),
    (
        _set("connections.0.target.secret", {"env": "A", "file": "b"}),
        "connections[0].target.secret",
        "exactly one of env and file",
    ),
    (
        _set("connections.0.target.tls", "verify-full"),
        "connections[0].target.ca_file",
        'required when tls = "verify-full"',
    ),
    (
        _set("connections.0.target.ca_file", "ca.pem"),
        "connections[0].target.ca_file",
        'only used with tls = "verify-full"',
    ),
    (_set("connections.0.listen", "6432"), "connections[0].listen", "must be host:port"),
    (
        _set("connections.0.listen", "::1:6432"),
        "connections[0].listen",
        "IPv6 address needs brackets",
    ),
    (_set("connections.0.listen", "[db]:6432"), "connections[0].listen", "not an IPv6 address"),
    (
        _set("connections.0.listen", "127.0.0.1:65536"),
        "connections[0].listen",
        "port must be a number from 0 to 65535",
    ),
    (
        _set("connections.0.listen", "127.0.0.1:http"),
        "connections[0].listen",
        "port must be a number",
    ),
    (
        _set("connections.0.target.port", 0),
        "connections[0].target.port",
        "must be an integer from 1 to 65535 (got 0)",
    ),
    (
        _set("connections.0.target.port", "5432"),
        "connections[0].target.port",
        "must be an integer (got '5432')",
    ),
    (_set("tokens.0.sha256", "A" * 64), "tokens[0].sha256", "64 lowercase hex characters"),
    (_set("tokens.0.sha256", "abc"), "tokens[0].sha256", "64 lowercase hex characters"),
    (_set("tokens.0.identity", " "), "tokens[0].identity", "must not be empty"),
    (_set("tokens.0.groups", ["dba", ""]), "tokens[0].groups[1]", "must be a non-empty string"),
    (_set("tokens", {"identity": "x"}), "tokens", "must be an array of tables, written [[tokens]]"),
    (
        _set("connections.0.name", "app db"),
        "connections[0].name",
        "may contain only letters, digits",
    ),
    (
        _set("connections.0.labels", {"env": 1}),
        "connections[0].labels.env",
        "must be a string (got 1)",
    ),
    (
        _set("gateway.startup_timeout_seconds", 0),
        "gateway.startup_timeout_seconds",
        "more than zero",
    ),
    (
        _set("gateway.connect_timeout_seconds", float("inf")),
        "gateway.connect_timeout_seconds",
        "must be a finite number",
    ),
    (
        _set("gateway.auth_failure_delay_seconds", -1),
        "gateway.auth_failure_delay_seconds",
        "zero or more",
    ),
    (_set("gateway.max_message_bytes", 0), "gateway.max_message_bytes", "at least 1"),
    (_set("gateway.max_message_bytes", 1.5), "gateway.max_message_bytes", "must be an integer"),
    (
        _set("client_tls", {"cert_file": "c.pem"}),
        "client_tls.key_file",
        "required because cert_file is set",
    ),
    (
        _set("client_tls", {"allow_plaintext_on_loopback": "yes"}),
        "client_tls.allow_plaintext_on_loopback",
        "must be true or false",
    ),
]


@pytest.mark.parametrize(("change", "key", "words"), ERROR_CASES)
def test_each_kind_of_error_names_file_key_and_problem(
    change: Callable[[dict[str, Any]], None], key: str, words: str
) -> None:
    data = minimal()
    change(data)

    problems = problems_of(data)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"hoopd.toml: {key}: "), problems
    assert words in problems[0]


def test_inline_secret_is_refused_with_a_reason_and_without_echoing_it() -> None:
    data = minimal()
    data["connections"][0]["target"]["secret"] = "hunter2-s3cret"

    (problem,) = problems_of(data)

    assert problem.startswith("hoopd.toml: connections[0].target.secret: ")
    assert "inline secret is refused" in problem and "env" in problem and "file" in problem
    assert "hunter2" not in problem


def test_a_token_pasted_as_its_hash_is_not_echoed() -> None:
    data = minimal()
    data["tokens"][0]["sha256"] = "hoopd_Sup3rSecretTokenValue"

    (problem,) = problems_of(data)

    assert "Sup3rSecret" not in problem


def test_duplicates_name_the_earlier_entry() -> None:
    data = minimal()
    data["connections"].append(copy.deepcopy(data["connections"][0]))
    data["tokens"].append({"identity": "bob", "sha256": HASH_A, "expires": FAR_FUTURE})

    assert problems_of(data) == [
        "hoopd.toml: tokens[1].sha256: same token hash as tokens[0]",
        "hoopd.toml: connections[1].name: 'appdb' is already used by connections[0]",
    ]


def test_connections_sharing_a_listener_must_share_a_protocol() -> None:
    data = minimal()
    other = copy.deepcopy(data["connections"][0])
    other.update(name="other", protocol="mysql")
    data["connections"].append(other)

    with pytest.raises(ConfigError) as info:
        config_from_dict(data, Path("hoopd.toml"), protocols={"postgres", "mysql"})

    assert info.value.problems == (
        "hoopd.toml: connections[1].listen: shared with connections[0], which uses protocol"
        " 'postgres'; connections sharing a listen address must use the same protocol",
    )


def test_all_problems_are_reported_together() -> None:
    data = minimal()
    data["gateway"]["colour"] = "red"
    data["gateway"]["log_level"] = "loud"
    data["tokens"][0]["sha256"] = "nope"
    data["connections"][0]["target"]["tls"] = "yes"
    data["connections"][0]["listen"] = "nowhere"

    problems = problems_of(data)

    keys = [p.split(": ")[1] for p in problems]
    assert sorted(keys) == sorted(
        [
            "gateway.colour",
            "gateway.log_level",
            "tokens[0].sha256",
            "connections[0].target.tls",
            "connections[0].listen",
        ]
    )


def test_a_missing_table_is_reported_once_not_once_per_key() -> None:
    data = minimal()
    data["connections"][0]["target"] = "db:5432"

    assert problems_of(data) == [
        "hoopd.toml: connections[0].target: must be a table (got 'db:5432')"
    ]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(missing))}: cannot read: No such file"):
        load_config(missing)

    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(broken))}: not valid TOML: .*line 1"):
        load_config(broken)


# --- secrets -----------------------------------------------------------------------

SECRET = "correct horse battery staple"


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOPD_TEST_SECRET", SECRET)

    assert SecretRef(env="HOOPD_TEST_SECRET").resolve() == SECRET


def test_secret_from_file_is_reread_and_loses_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    ref = SecretRef(file=path)
    assert ref.resolve() == SECRET

    path.write_text("rotated\r\n")
    assert ref.resolve() == "rotated"


def test_relative_secret_file_is_taken_from_the_config_directory(tmp_path: Path) -> None:
    data = minimal()
    data["connections"][0]["target"]["secret"] = {"file": "secrets/app.pw"}
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "app.pw").write_text(SECRET)

    cfg = config_from_dict(data, tmp_path / "hoopd.toml")

    assert cfg.connections[0].target.secret.resolve() == SECRET


def test_secret_never_shows_in_repr_str_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOPD_TEST_SECRET", SECRET)
    path = tmp_path / "pw"
    path.write_text(SECRET)
    data = minimal()
    cfg = config_from_dict(data, Path("hoopd.toml"))
    env_ref = dataclasses.replace(cfg.connections[0].target.secret, env="HOOPD_TEST_SECRET")

    for ref in (env_ref, SecretRef(file=path)):
        assert ref.resolve() == SECRET
        for text in (repr(ref), str(ref), repr(cfg), str(cfg)):
            assert SECRET not in text
    assert repr(env_ref) == "SecretRef(env='HOOPD_TEST_SECRET')"


def test_unset_env_names_connection_key_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPDB_PASSWORD", raising=False)
    cfg = config_from_dict(minimal(), Path("hoopd.toml"))

    with pytest.raises(ConfigError) as info:
        cfg.connections[0].target.secret.resolve()

    assert str(info.value) == (
        "hoopd.toml: connections[0].target.secret (connection 'appdb'):"
        " environment variable APPDB_PASSWORD is not set"
    )


def test_empty_or_unreadable_secrets_are_errors_without_the_content(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        SecretRef(file=empty).resolve()

    with pytest.raises(ConfigError, match=r"cannot read file .*absent: No such file"):
        SecretRef(file=tmp_path / "absent").resolve()

    binary = tmp_path / "binary"
    binary.write_bytes(b"\xffsecret-bytes")
    with pytest.raises(ConfigError) as info:
        SecretRef(file=binary).resolve()
    assert "not valid UTF-8" in str(info.value) and "secret-bytes" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_check_secrets_reports_every_unusable_secret_and_ca_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOPD_UNSET", raising=False)
    monkeypatch.setenv("HOOPD_SET", SECRET)
    not_a_file = tmp_path / "a-directory"
    not_a_file.mkdir()
    data = minimal()
    base = data["connections"][0]
    variants = [
        ({"env": "HOOPD_SET"}, {}),
        ({"env": "HOOPD_UNSET"}, {}),
        ({"file": str(not_a_file)}, {}),
        ({"env": "HOOPD_SET"}, {"tls": "verify-full", "ca_file": "missing-ca.pem"}),
    ]
    data["connections"] = []
    for i, (secret, extra) in enumerate(variants):
        conn = copy.deepcopy(base)
        conn["name"] = f"c{i}"
        conn["target"].update(secret=secret, **extra)
        data["connections"].append(conn)
    cfg = config_from_dict(data, tmp_path / "hoopd.toml")

    problems = check_secrets(cfg)

    assert len(problems) == 3, problems
    assert "connections[1].target.secret" in problems[0] and "HOOPD_UNSET" in problems[0]
    assert "connections[2].target.secret" in problems[1] and "Is a directory" in problems[1]
    assert problems[2] == (
        f"{tmp_path / 'hoopd.toml'}: connections[3].target.ca_file:"
        f" cannot read {tmp_path / 'missing-ca.pem'}"
    )
    assert all(SECRET not in p for p in problems)


def test_check_secrets_is_empty_when_everything_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPDB_PASSWORD", SECRET)
    cfg: GatewayConfig = config_from_dict(minimal(), Path("hoopd.toml"))

    assert check_secrets(cfg) == []


def test_the_packaged_example_is_a_valid_configuration() -> None:
    example = Path(__file__).resolve().parents[2] / "packaging" / "hoopd.toml.example"

    cfg = load_config(example)

    assert cfg.data_dir == Path("/var/lib/hoopd")
    assert [c.name for c in cfg.connections] == ["appdb", "reports"]
    assert cfg.connections[0].listen_address == cfg.connections[1].listen_address


def test_the_idle_timeout_is_the_gateways_unless_a_connection_sets_its_own() -> None:
    data = minimal()
    assert config_from_dict(data, Path("hoopd.toml")).connections[0].idle_timeout_seconds == 0.0
    data["gateway"]["idle_timeout_seconds"] = 900
    second = copy.deepcopy(data["connections"][0])
    second["name"] = "prod"
    second["idle_timeout_seconds"] = 60
    data["connections"].append(second)

    cfg = config_from_dict(data, Path("hoopd.toml"))

    assert [c.idle_timeout_seconds for c in cfg.connections] == [900.0, 60.0]
    data["connections"][1]["idle_timeout_seconds"] = -1
    assert any("idle_timeout_seconds" in line for line in problems_of(data))
