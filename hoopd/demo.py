"""``hoopd demo``: a throwaway PostgreSQL with sample data behind a gateway.

The data directory keeps the gateway's recordings and state (across runs), the
upstream password in a 0600 file, and the generated ``hoopd.toml`` — a working
example of a production configuration. The PostgreSQL cluster is made afresh in
a temporary directory on every run and removed when the demo stops. It prints
commands to paste, then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import trio

from hoopd.config import ConfigError, load_config
from hoopd.gateway import Listener
from hoopd.identity.tokens import new_token
from hoopd.pgcluster import ClusterError, LocalCluster
from hoopd.serve_cli import configure_logging
from hoopd.server import StartupError, serve

DATABASE = "shop"
UPSTREAM_USER = "shop_app"


def write_config(
    data_dir: Path, port: int, pg_port: int, token_hash: str, approver_hash: str
) -> Path:
    path = data_dir / "hoopd.toml"
    # The demo's tokens are bootstrap tokens: they expire a week from now.
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(
        f"""# Written by `hoopd demo`; a working example of a gateway configuration.
[gateway]
data_dir = "state"
log_level = "info"

[client_tls]
# No cert_file/key_file: a self-signed certificate is generated in state/tls/.
allow_plaintext_on_loopback = false

[recording]
durability = "process-crash"

[policy]
directory = "policy"

[[tokens]]
identity = "demo-user"
groups = ["demo"]
sha256 = "{token_hash}"
expires = {expires}

[[tokens]]
identity = "demo-approver"
groups = ["demo-approvers"]
sha256 = "{approver_hash}"
expires = {expires}

[[connections]]
name = "{DATABASE}"
protocol = "postgres"
listen = "127.0.0.1:{port}"
labels = {{ env = "demo" }}

  [connections.target]
  host = "127.0.0.1"
  port = {pg_port}
  database = "{DATABASE}"
  user = "{UPSTREAM_USER}"
  secret = {{ file = "secrets/{DATABASE}.password" }}
  tls = "disable"
"""
    )
    return path


def prepare_database(cluster: LocalCluster, password: str) -> None:
    schema = files("hoopd").joinpath("demo_schema.sql").read_text()
    cluster.psql(
        f"CREATE ROLE {UPSTREAM_USER} LOGIN PASSWORD '{password}';\n"
        f"CREATE DATABASE {DATABASE} OWNER {UPSTREAM_USER};\n"
    )
    cluster.psql(f"SET ROLE {UPSTREAM_USER};\n{schema}", database=DATABASE)


def hoopd_command() -> str:
    """How to call ``hoopd`` from a shell: the script beside this interpreter, if any."""
    beside = Path(sys.executable).parent / "hoopd"
    return str(beside) if beside.exists() else "hoopd"


def write_policy(data_dir: Path) -> None:
    """The demo policy, unless the directory already holds one (edits survive restarts)."""
    directory = data_dir / "policy"
    directory.mkdir(exist_ok=True)
    target = directory / "demo.yaml"
    if not target.exists():
        target.write_text(files("hoopd").joinpath("demo_policy.yaml").read_text())


def instructions(data_dir: Path, port: int, token: str, approver: str) -> str:
    hoopd = hoopd_command()
    config = data_dir / "hoopd.toml"
    here = f"--data-dir {data_dir / 'state'}"
    secret = f"PGPASSWORD={token}"
    return f"""
hoopd demo is ready. The gateway holds the database password; you hold a token.

  Connect with psql (the token is the password; TLS is required):
    {secret} psql "host=127.0.0.1 port={port} dbname={DATABASE} user=demo sslmode=require"

  Try (the policy is {data_dir / "policy" / "demo.yaml"}):
    SELECT full_name, email, card_number FROM customers;      -- masked
    UPDATE products SET price = price * 1.1 WHERE id = 1;       -- runs
    UPDATE products SET price = 0;                              -- refused
    DELETE FROM orders WHERE id = 1;                            -- waits for approval:
      HOOPD_TOKEN={approver} {hoopd} approvals --config {config}
      HOOPD_TOKEN={approver} {hoopd} approve <ID> --config {config}

  pgbench through the gateway (the same token, TLS as above):
    {secret} PGSSLMODE=require pgbench -h 127.0.0.1 -p {port} -U demo -i {DATABASE}
    {secret} PGSSLMODE=require pgbench -h 127.0.0.1 -p {port} -U demo -S -T 10 {DATABASE}

  Give an agent a narrower token of its own (read-only, 10 minutes), then revoke it:
    AGENT=$(HOOPD_TOKEN={token} {hoopd} token exchange --config {config} \\
            --scope {DATABASE}:read --ttl 600 --actor my-agent)
    PGPASSWORD=$AGENT psql "host=127.0.0.1 port={port} dbname={DATABASE} user=demo sslmode=require"
    {hoopd} revoke --actor my-agent --config {config}     # its live sessions end at once
    HOOPD_TOKEN=$AGENT {hoopd} blast-radius --config {config}

  Then look at what was recorded:
    {hoopd} sessions --tree {here}
    {hoopd} sessions {here}
    {hoopd} replay <SESSION-ID> {here}
    {hoopd} audit verify {here}

  Configuration: {data_dir / "hoopd.toml"}   (Ctrl-C stops the gateway and the database)
"""


def run_demo(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    (data_dir / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
    # The throwaway cluster lives in its own temporary directory: PostgreSQL runs as
    # an unprivileged user, who may not be able to reach a data dir under /root.
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="hoopd-demo-pg-")))
    try:
        cluster.init()
        cluster.start(cluster.root / "postgres.log")
        password = token_urlsafe(24)
        prepare_database(cluster, password)
        secret_file = data_dir / "secrets" / f"{DATABASE}.password"
        secret_file.write_text(password + "\n")
        secret_file.chmod(0o600)
        token, token_hash = new_token()
        approver, approver_hash = new_token()
        write_policy(data_dir)
        path = write_config(data_dir, args.port, cluster.port, token_hash, approver_hash)
        config = load_config(path)
        configure_logging(config.log_level)

        def ready(listeners: list[Listener]) -> None:
            print(instructions(data_dir, args.port, token, approver), flush=True)

        trio.run(serve, config, ready)
    except (ClusterError, ConfigError, StartupError) as exc:
        print(f"hoopd demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "demo", help="start a throwaway PostgreSQL with sample data behind the gateway"
    )
    parser.add_argument("--data-dir", default="demo-data", help="where everything is kept")
    parser.add_argument("--port", type=int, default=6432, help="the gateway's port")
    parser.set_defaults(func=run_demo)
