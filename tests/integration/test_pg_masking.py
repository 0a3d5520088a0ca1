"""Masking results through the gateway: real psql and psycopg against PostgreSQL 15.

A masked value must be absent from the bytes the client got and from the recording;
rows no rule touches arrive as the target sent them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.gateway import (
    Gateway,
    running_gateway,
    session_id_of,
    session_ids,
    wait_for_new_session,
)
from tests.support.pgserver import PgServer

POLICY = """\
rules:
  - name: everything
    match: {}
    action: allow
  - name: mask-email
    action: mask
    columns: [customers.email]
    style: keep-last
    keep_last: 4
  - name: mask-national-id
    action: mask
    columns: [national_id]
    style: hmac
  - name: cards-anywhere
    action: mask
    detectors: [card]
    style: redact
"""

CARD = "4111 1111 1111 1111"  # passes the Luhn check
NOT_A_CARD = "4111 1111 1111 1112"  # fails it


@pytest.fixture(scope="module")
def gw(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    pg.superuser_sql(
        "drop table if exists stored_cards;"
        "create table stored_cards (pan text unique);"
        f"insert into stored_cards values ('{CARD}');"
        "grant all on stored_cards to app;"
    )
    policy_dir = tmp_path_factory.mktemp("mask-policy")
    (policy_dir / "rules.yaml").write_text(POLICY)
    with running_gateway(pg, tmp_path_factory.mktemp("gw-mask"), policy_dir=policy_dir) as gateway:
        yield gateway


def _direct(pg: PgServer, sql: str) -> list[str]:
    return pg.superuser_sql(sql).strip().splitlines()


def test_column_rules_mask_psql_output_and_leave_other_columns(gw: Gateway, pg: PgServer) -> None:
    emails = _direct(pg, "select email from customers order by id limit 5")
    names = _direct(pg, "select full_name from customers order by id limit 5")
    done = gw.psql("-At", "-c", "select full_name, email from customers order by id limit 5")
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.strip().splitlines()]
    assert [r[0] for r in rows] == names  # untouched column, byte for byte
    for (_, shown), real in zip(rows, emails, strict=True):
        assert shown != real and shown.endswith(real[-4:])
        assert real not in done.stdout


def test_an_alias_does_not_hide_a_masked_column(gw: Gateway, pg: PgServer) -> None:
    emails = _direct(pg, "select email from customers order by id limit 3")
    ids = _direct(pg, "select national_id from customers order by id limit 3")
    for sql in (
        "select email as contact, national_id as n from customers order by id limit 3",
        "select c, n from (select email as c, national_id as n, id from customers) s"
        " order by id limit 3",
    ):
        done = gw.psql("-At", "-c", sql)
        assert done.returncode == 0, done.stderr
        assert not any(value in done.stdout for value in [*emails, *ids]), sql
        rows = [line.split("|") for line in done.stdout.strip().splitlines()]
        assert all(c.endswith(e[-4:]) for (c, _), e in zip(rows, emails, strict=True))


def test_hmac_tokens_are_stable_and_keep_equality(gw: Gateway, pg: PgServer) -> None:
    first = gw.psql("-At", "-c", "select national_id from customers order by id limit 3")
    again = gw.psql("-At", "-c", "select national_id from customers order by id limit 3")
    assert first.returncode == 0, first.stderr
    tokens = first.stdout.split()
    assert tokens == again.stdout.split()
    assert all(re.fullmatch(r"hm_[0-9a-f]{16}", token) for token in tokens)
    real = _direct(pg, "select national_id from customers order by id limit 3")
    assert not any(value in first.stdout for value in real)


def test_detectors_mask_values_in_any_column_and_spare_near_misses(gw: Gateway) -> None:
    done = gw.psql("-At", "-c", f"select 'paid with {CARD}', '{NOT_A_CARD}'")
    assert done.returncode == 0, done.stderr
    assert CARD not in done.stdout
    assert NOT_A_CARD in done.stdout


def test_binary_and_text_results_through_psycopg(gw: Gateway, pg: PgServer) -> None:
    real = _direct(pg, "select email from customers order by id limit 1")[0]
    with gw.connect() as conn:
        text_row = conn.execute("select email from customers order by id limit 1").fetchone()
        with conn.cursor(binary=True) as cur:
            binary_row = cur.execute("select email from customers order by id limit 1").fetchone()
    assert text_row is not None and binary_row is not None
    assert text_row[0] != real and text_row[0].endswith(real[-4:])
    assert binary_row[0] == text_row[0]


def test_binary_non_text_column_under_a_rule_is_not_sent(gw: Gateway) -> None:
    with (
        gw.connect() as conn,
        conn.cursor(binary=True) as cur,
        pytest.raises(psycopg.errors.FeatureNotSupported) as refused,
    ):
        cur.execute("select 1234::int8 as national_id")
    assert "could not be masked" in str(refused.value)
    assert "1234" not in str(refused.value)


def test_error_messages_do_not_echo_masked_values(gw: Gateway) -> None:
    # The duplicate-key error quotes the card number stored in the table; the
    # statement itself does not contain it.
    done = gw.psql("-c", "insert into stored_cards select pan from stored_cards")
    assert done.returncode != 0
    assert "duplicate key value violates unique constraint" in done.stderr
    assert CARD not in done.stderr


def test_copy_out_is_refused_while_column_rules_apply(gw: Gateway, pg: PgServer) -> None:
    done = gw.psql("-c", "copy customers to stdout")
    assert done.returncode != 0
    assert "COPY TO STDOUT is refused" in done.stderr
    real = _direct(pg, "select email from customers order by id limit 1")[0]
    assert real not in done.stdout


def test_masked_values_are_absent_from_the_recording(gw: Gateway) -> None:
    before = session_ids(gw)
    done = gw.psql("-c", "insert into stored_cards select pan from stored_cards")
    assert done.returncode != 0
    session = wait_for_new_session(gw, before)
    records = gw.replay(session_id_of(session))
    # Other tests here send the number in their SQL, which is recorded as sent; this
    # session's statement does not, so the number can only come from the target.
    assert CARD not in json.dumps(records)
    errors = [r["body"]["error"] for r in records if r["kind"] == "result" and "error" in r["body"]]
    assert errors and all(CARD not in str(e) for e in errors)


def test_a_masked_non_text_column_is_described_as_text(gw: Gateway) -> None:
    # `national_id` is under an hmac rule; here it is an integer expression with that name.
    with gw.connect() as conn:
        row = conn.execute("select 123456789::int8 as national_id, 42 as answer").fetchone()
    assert row is not None
    token, answer = row
    assert isinstance(token, str) and token.startswith("hm_") and "123456789" not in token
    assert answer == 42  # columns no rule covers keep their type
