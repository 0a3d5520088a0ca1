"""The SQL classifier: kinds, tables, functions and flags, as PostgreSQL would run the text.

The tables below are the specification of docs/classification.md in executable form;
each row is a statement and what classify() must say about it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoopd.events import SqlClassification
from hoopd.protocols.postgres import classify as classifier
from hoopd.protocols.postgres.classify import classify, clear_caches


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


def kinds(sql: str) -> set[str]:
    return set(classify(sql).kinds)


# ---------------------------------------------------------------------------
# Kinds

KIND_CASES: list[tuple[str, set[str]]] = [
    # Data access
    ("SELECT 1", {"select"}),
    ("VALUES (1), (2)", {"select"}),
    ("TABLE t", {"select"}),
    ("SELECT * FROM t FOR UPDATE", {"select"}),
    ("INSERT INTO t VALUES (1)", {"insert"}),
    ("INSERT INTO t SELECT * FROM s", {"insert"}),
    ("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", {"insert"}),
    ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 1", {"insert", "update"}),
    ("UPDATE t SET a = 1 WHERE id = 2", {"update"}),
    ("DELETE FROM t WHERE id = 2", {"delete"}),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING", {"merge"}),
    (
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE "
        "WHEN NOT MATCHED THEN INSERT VALUES (1)",
        {"merge", "delete", "insert"},
    ),
    ("MERGE INTO t USING s ON true WHEN MATCHED THEN UPDATE SET a = 1", {"merge", "update"}),
    # Data-modifying CTEs count wherever they are
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {"select", "delete"}),
    (
        "WITH u AS (UPDATE t SET a = 1 RETURNING *) INSERT INTO log SELECT * FROM u",
        {"insert", "update"},
    ),
    ("WITH x AS (SELECT 1) SELECT * FROM x", {"select"}),
    # COPY
    ("COPY t FROM STDIN", {"copy-in"}),
    ("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", {"copy-in"}),
    ("COPY t TO STDOUT", {"copy-out"}),
    ("COPY (SELECT * FROM t) TO STDOUT", {"copy-out", "select"}),
    ("COPY (DELETE FROM t RETURNING *) TO STDOUT", {"copy-out", "delete"}),
    ("COPY t FROM '/etc/passwd'", {"copy-in", "copy-file"}),
    ("COPY t TO '/tmp/out.csv'", {"copy-out", "copy-file"}),
    ("COPY t FROM PROGRAM 'curl http://x'", {"copy-in", "copy-program"}),
    ("COPY (SELECT 1) TO PROGRAM 'sh -c id'", {"copy-out", "copy-program", "select"}),
    # DDL
    ("CREATE TABLE t (a int)", {"ddl"}),
    ("CREATE TEMP TABLE t (a int)", {"ddl"}),
    ("CREATE TABLE t AS SELECT * FROM s", {"ddl", "select"}),
    ("SELECT * INTO t FROM s", {"ddl", "select"}),
    ("CREATE MATERIALIZED VIEW mv AS SELECT * FROM s", {"ddl", "select"}),
    ("CREATE MATERIALIZED VIEW mv AS SELECT * FROM s WITH NO DATA", {"ddl"}),
    ("CREATE VIEW v AS SELECT * FROM s", {"ddl"}),
    ("CREATE INDEX i ON t (a)", {"ddl"}),
    ("CREATE SEQUENCE s", {"ddl"}),
    ("CREATE SCHEMA s", {"ddl"}),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", {"ddl"}),
    ("CREATE TYPE mood AS ENUM ('sad', 'ok')", {"ddl"}),
    ("CREATE TYPE pair AS (a int, b int)", {"ddl"}),
    ("CREATE AGGREGATE a (int) (SFUNC = f, STYPE = int)", {"ddl"}),
    ("CREATE DATABASE d", {"ddl"}),
    ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", {"ddl"}),
    ("CREATE POLICY p ON t USING (true)", {"ddl"}),
    ("CREATE FOREIGN TABLE ft (a int) SERVER s", {"ddl"}),
    ("DROP TABLE t", {"drop"}),
    ("DROP FUNCTION f(int)", {"drop"}),
    ("DROP DATABASE d", {"drop"}),
    ("DROP OWNED BY bob", {"drop"}),
    ("TRUNCATE t", {"truncate"}),
    ("TRUNCATE TABLE a, b RESTART IDENTITY CASCADE", {"truncate"}),
    ("ALTER TABLE t ADD COLUMN c int", {"alter"}),
    ("ALTER TABLE t RENAME TO u", {"alter"}),
    ("ALTER TABLE t SET SCHEMA s", {"alter"}),
    ("ALTER TABLE t OWNER TO bob", {"alter"}),
    ("ALTER SEQUENCE s RESTART", {"alter"}),
    ("ALTER DATABASE d SET work_mem = '1MB'", {"alter"}),
    ("REASSIGN OWNED BY bob TO alice", {"alter"}),
    # Privileges and roles
    ("GRANT SELECT ON t TO bob", {"grant"}),
    ("GRANT EXECUTE ON FUNCTION f() TO bob", {"grant"}),
    ("REVOKE ALL ON t FROM bob", {"revoke"}),
    ("GRANT admin TO bob", {"grant", "role"}),
    ("REVOKE admin FROM bob", {"revoke", "role"}),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", {"alter", "grant"}),
    ("ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM bob", {"alter", "revoke"}),
    ("CREATE ROLE x LOGIN", {"role"}),
    ("CREATE USER x PASSWORD 'secret'", {"role"}),
    ("ALTER ROLE x SUPERUSER", {"role"}),
    ("ALTER USER x SET search_path = public", {"role"}),
    ("ALTER ROLE x RENAME TO y", {"role"}),
    ("DROP ROLE x", {"role"}),
    ("DROP USER IF EXISTS x", {"role"}),
    ("SET ROLE admin", {"role"}),
    ("SET LOCAL ROLE admin", {"role"}),
    ("SET role TO DEFAULT", {"role"}),
    ("RESET ROLE", {"role"}),
    ("SET SESSION AUTHORIZATION admin", {"role"}),
    ("SET SESSION AUTHORIZATION DEFAULT", {"role"}),
    ("RESET SESSION AUTHORIZATION", {"role"}),
    # Procedural and prepared
    ("DO $$ BEGIN DELETE FROM t; END $$", {"do-block"}),
    ("DO LANGUAGE plpgsql $$ BEGIN NULL; END $$", {"do-block"}),
    ("CALL p(1)", {"call"}),
    ("PREPARE q AS SELECT * FROM t WHERE id = $1", {"prepare", "select"}),
    ("PREPARE q (int) AS DELETE FROM t WHERE id = $1", {"prepare", "delete"}),
    ("PREPARE q AS INSERT INTO t VALUES ($1)", {"prepare", "insert"}),
    ("EXECUTE q", {"execute"}),
    ("EXECUTE q(1, 'x')", {"execute"}),
    ("CREATE TABLE t AS EXECUTE q", {"ddl", "execute"}),
    ("DEALLOCATE q", {"deallocate"}),
    ("DEALLOCATE ALL", {"deallocate"}),
    # EXPLAIN
    ("EXPLAIN SELECT * FROM t", {"explain"}),
    ("EXPLAIN DELETE FROM t", {"explain"}),
    ("EXPLAIN (ANALYZE false) DELETE FROM t", {"explain"}),
    ("EXPLAIN (ANALYZE off) DELETE FROM t", {"explain"}),
    ("EXPLAIN (ANALYZE 0) DELETE FROM t", {"explain"}),
    ("EXPLAIN ANALYZE SELECT * FROM t", {"explain", "select"}),
    ("EXPLAIN ANALYZE DELETE FROM t", {"explain", "explain-analyze-write", "delete"}),
    ("EXPLAIN (ANALYZE) UPDATE t SET a = 1", {"explain", "explain-analyze-write", "update"}),
    (
        "EXPLAIN (ANALYZE true) INSERT INTO t VALUES (1)",
        {"explain", "explain-analyze-write", "insert"},
    ),
    ("EXPLAIN (ANALYZE on) DELETE FROM t", {"explain", "explain-analyze-write", "delete"}),
    ("EXPLAIN (ANALYZE 1) DELETE FROM t", {"explain", "explain-analyze-write", "delete"}),
    (
        "EXPLAIN (FORMAT JSON, ANALYZE) DELETE FROM t",
        {"explain", "explain-analyze-write", "delete"},
    ),
    ("EXPLAIN ANALYZE VERBOSE DELETE FROM t", {"explain", "explain-analyze-write", "delete"}),
    (
        "EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        {"explain", "explain-analyze-write", "select", "delete"},
    ),
    (
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
        {"explain", "explain-analyze-write", "ddl", "select"},
    ),
    ("EXPLAIN ANALYZE EXECUTE q", {"explain", "explain-analyze-write", "execute"}),
    (
        "EXPLAIN ANALYZE REFRESH MATERIALIZED VIEW mv",
        {"explain", "explain-analyze-write", "utility"},
    ),
    ("EXPLAIN WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", {"explain"}),
    # Session
    ("SET work_mem = '64MB'", {"set"}),
    ("SET search_path TO s, public", {"set"}),
    ("SET TIME ZONE 'UTC'", {"set"}),
    ("RESET work_mem", {"set"}),
    ("RESET ALL", {"set"}),
    ("SHOW work_mem", {"show"}),
    ("SHOW ALL", {"show"}),
    ("SELECT set_config('work_mem', '1MB', false)", {"select", "set"}),
    ("SELECT set_config('role', 'admin', false)", {"select", "role"}),
    ("SELECT pg_catalog.set_config('Session_Authorization'::text, 'x', true)", {"select", "role"}),
    ("SELECT set_config(current_user, 'x', false)", {"select", "role"}),
    ("SELECT other.set_config('role', 'admin', false)", {"select"}),
    ("BEGIN", {"transaction"}),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", {"transaction"}),
    ("START TRANSACTION READ WRITE", {"transaction"}),
    ("COMMIT", {"transaction"}),
    ("ROLLBACK", {"transaction"}),
    ("SAVEPOINT s1", {"transaction"}),
    ("ROLLBACK TO SAVEPOINT s1", {"transaction"}),
    ("RELEASE SAVEPOINT s1", {"transaction"}),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", {"transaction"}),
    ("SET LOCAL TRANSACTION READ ONLY", {"transaction"}),
    ("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", {"transaction"}),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {"set"}),
    ("PREPARE TRANSACTION 'x'", {"transaction"}),
    ("COMMIT PREPARED 'x'", {"transaction"}),
    ("LISTEN ch", {"listen"}),
    ("NOTIFY ch", {"notify"}),
    ("NOTIFY ch, 'payload'", {"notify"}),
    ("UNLISTEN ch", {"unlisten"}),
    ("UNLISTEN *", {"unlisten"}),
    ("DISCARD ALL", {"discard"}),
    ("DISCARD PLANS", {"discard"}),
    # Maintenance and the rest
    ("VACUUM", {"vacuum"}),
    ("VACUUM FULL t", {"vacuum"}),
    ("VACUUM (ANALYZE) t", {"vacuum"}),
    ("ANALYZE t", {"analyze"}),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", {"lock"}),
    ("COMMENT ON TABLE t IS 'x'", {"comment"}),
    ("SECURITY LABEL FOR selinux ON TABLE t IS 'x'", {"security-label"}),
    ("ALTER SYSTEM SET work_mem = '1GB'", {"alter-system"}),
    ("ALTER SYSTEM RESET ALL", {"alter-system"}),
    ("CREATE EXTENSION dblink", {"ddl", "extension"}),
    ("CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA s", {"ddl", "extension"}),
    ("ALTER EXTENSION dblink UPDATE", {"alter", "extension"}),
    ("ALTER EXTENSION dblink SET SCHEMA s", {"alter", "extension"}),
    ("ALTER EXTENSION dblink ADD FUNCTION f()", {"alter", "extension"}),
    ("DROP EXTENSION dblink", {"drop", "extension"}),
    ("CHECKPOINT", {"utility"}),
    ("LOAD 'auto_explain'", {"utility"}),
    ("CLUSTER t USING i", {"utility"}),
    ("REINDEX TABLE t", {"utility"}),
    ("REFRESH MATERIALIZED VIEW mv", {"utility"}),
    ("DECLARE c CURSOR FOR SELECT * FROM t", {"utility", "select"}),
    ("FETCH 10 FROM c", {"utility"}),
    ("CLOSE c", {"utility"}),
    ("SET CONSTRAINTS ALL DEFERRED", {"utility"}),
]


@pytest.mark.parametrize(("sql", "expected"), KIND_CASES)
def test_kinds(sql: str, expected: set[str]) -> None:
    result = classify(sql)
    check_invariants(result)
    assert result.parse_error is None
    assert set(result.kinds) == expected


def test_every_kind_is_covered() -> None:
    """KIND_CASES exercise the whole vocabulary, but for empty and unparseable (tested
    below) and the two kinds only the engine produces."""
    covered = set().union(*(expected for _, expected in KIND_CASES))
    others = {"empty", "unparseable", "function-call", "unknown-portal"}
    assert covered | others == classifier.KINDS
    assert not covered & others


# ---------------------------------------------------------------------------
# Relations

TABLE_CASES: list[tuple[str, set[str], set[str]]] = [
    ("SELECT * FROM t", {"t"}, set()),
    ("SELECT * FROM public.t", {"public.t"}, set()),
    ("SELECT * FROM mydb.public.t", {"mydb.public.t"}, set()),
    ("SELECT * FROM Public.T", {"public.t"}, set()),
    ('SELECT * FROM "Public"."T"', {'"Public"."T"'}, set()),
    ('SELECT * FROM "a.b"', {'"a.b"'}, set()),
    ('SELECT * FROM "we""ird"', {'"we""ird"'}, set()),
    ("SELECT * FROM café", {"café"}, set()),
    ("SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN s.c USING (id)", {"a", "b", "s.c"}, set()),
    ("SELECT * FROM a WHERE x IN (SELECT x FROM b)", {"a", "b"}, set()),
    ("SELECT (SELECT max(x) FROM b) FROM a", {"a", "b"}, set()),
    ("SELECT * FROM (SELECT * FROM inner_t) AS sub", {"inner_t"}, set()),
    ("SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x) l", {"a", "b"}, set()),
    ("SELECT * FROM a UNION SELECT * FROM b EXCEPT SELECT * FROM c", {"a", "b", "c"}, set()),
    ("SELECT EXISTS (SELECT 1 FROM b)", {"b"}, set()),
    ("TABLE t", {"t"}, set()),
    # CTE names are not tables; scoping follows PostgreSQL
    ("WITH x AS (SELECT * FROM t) SELECT * FROM x", {"t"}, set()),
    ("WITH x AS (SELECT 1) SELECT * FROM x, public.x", {"public.x"}, set()),
    ("WITH t AS (SELECT * FROM t) SELECT * FROM t", {"t"}, set()),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b", {"b"}, set()),
    ("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b", set(), set()),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r",
        set(),
        set(),
    ),
    ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x", {"x"}, set()),
    ("WITH x AS (SELECT 1) SELECT * FROM (SELECT * FROM x) s", set(), set()),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", set(), {"t"}),
    ("WITH t AS (SELECT 1) DELETE FROM t", set(), {"t"}),
    # Writes
    ("INSERT INTO t VALUES (1)", set(), {"t"}),
    ("INSERT INTO public.t (a) SELECT b FROM s JOIN u ON true", {"s", "u"}, {"public.t"}),
    ("INSERT INTO t SELECT * FROM t", {"t"}, {"t"}),
    ("UPDATE t SET a = 1 WHERE id = 2", set(), {"t"}),
    ("UPDATE t SET a = s.a FROM s WHERE t.id = s.id", {"s"}, {"t"}),
    ("UPDATE t SET a = (SELECT max(a) FROM s)", {"s"}, {"t"}),
    ("DELETE FROM t USING s WHERE t.id = s.id", {"s"}, {"t"}),
    ("DELETE FROM ONLY t WHERE id IN (SELECT id FROM s)", {"s"}, {"t"}),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", {"s"}, {"t"}),
    (
        "MERGE INTO t USING (SELECT * FROM s JOIN u USING (id)) src ON t.id = src.id "
        "WHEN NOT MATCHED THEN INSERT VALUES (1)",
        {"s", "u"},
        {"t"},
    ),
    ("COPY t FROM STDIN", set(), {"t"}),
    ("COPY s.t (a) FROM '/tmp/x'", set(), {"s.t"}),
    ("COPY t TO STDOUT", {"t"}, set()),
    ("COPY (SELECT * FROM a JOIN b USING (id)) TO STDOUT", {"a", "b"}, set()),
    ("CREATE TABLE t AS SELECT * FROM s", {"s"}, {"t"}),
    ("SELECT * INTO new_t FROM s", {"s"}, {"new_t"}),
    ("CREATE VIEW v AS SELECT * FROM s", {"s"}, {"v"}),
    ("CREATE TABLE t (a int REFERENCES r(id), LIKE l)", {"r", "l"}, {"t"}),
    ("CREATE TABLE c () INHERITS (p)", {"p"}, {"c"}),
    ("CREATE TYPE pair AS (a int, b int)", set(), set()),
    ("CREATE INDEX i ON s.t (a)", set(), {"s.t"}),
    ("CREATE SEQUENCE s.seq", set(), {"s.seq"}),
    ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", set(), {"t"}),
    ("CREATE POLICY p ON t USING (owner = current_user)", set(), {"t"}),
    ("CREATE RULE r AS ON INSERT TO v DO INSTEAD INSERT INTO t VALUES (NEW.a)", set(), {"v", "t"}),
    ("ALTER TABLE t ADD COLUMN c int REFERENCES u(id)", {"u"}, {"t"}),
    ("ALTER TABLE t RENAME TO u", set(), {"t"}),
    ("ALTER TABLE t SET SCHEMA s", set(), {"t"}),
    ("DROP TABLE a, s.b", set(), {"a", "s.b"}),
    ("DROP VIEW IF EXISTS v", set(), {"v"}),
    ("DROP MATERIALIZED VIEW mv", set(), {"mv"}),
    ("DROP INDEX i", set(), set()),
    ("DROP FUNCTION f(int)", set(), set()),
    ("TRUNCATE a, s.b", set(), {"a", "s.b"}),
    ("GRANT SELECT ON t, s.u TO bob", set(), {"t", "s.u"}),
    ("GRANT SELECT ON ALL TABLES IN SCHEMA s TO bob", set(), set()),
    ("REFRESH MATERIALIZED VIEW mv", set(), {"mv"}),
    ("LOCK TABLE a, b", {"a", "b"}, set()),
    ("VACUUM a, s.b", {"a", "s.b"}, set()),
    ("ANALYZE t", {"t"}, set()),
    ("PREPARE q AS UPDATE t SET a = 1 FROM s", {"s"}, {"t"}),
    ("DECLARE c CURSOR FOR SELECT * FROM t", {"t"}, set()),
    # Plain EXPLAIN runs nothing but PostgreSQL checks privileges on these all the same
    ("EXPLAIN DELETE FROM t USING s", {"s"}, {"t"}),
    ("EXPLAIN SELECT * FROM t", {"t"}, set()),
    # Several statements
    (
        "SELECT * FROM a; DELETE FROM b WHERE x; INSERT INTO c SELECT * FROM d",
        {"a", "d"},
        {"b", "c"},
    ),
]


@pytest.mark.parametrize(("sql", "read", "written"), TABLE_CASES)
def test_tables(sql: str, read: set[str], written: set[str]) -> None:
    result = classify(sql)
    assert result.parse_error is None
    assert set(result.tables_read) == read
    assert set(result.tables_written) == written


# ---------------------------------------------------------------------------
# Functions

FUNCTION_CASES: list[tuple[str, set[str]]] = [
    ("SELECT 1", set()),
    ("SELECT now()", {"now"}),
    ("SELECT NOW()", {"now"}),
    ("SELECT pg_catalog.pg_read_file('/etc/passwd')", {"pg_catalog.pg_read_file"}),
    ("SELECT lo_export(16384, '/tmp/x')", {"lo_export"}),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", {"pg_terminate_backend"}),
    ("SELECT set_config('role', 'admin', false)", {"set_config"}),
    ("SELECT dblink_exec('dbname=x', 'DROP TABLE t')", {"dblink_exec"}),
    ('SELECT "MyFunc"(1)', {'"MyFunc"'}),
    ("SELECT count(*), sum(a) OVER (PARTITION BY b) FROM t", {"count", "sum"}),
    ("SELECT * FROM generate_series(1, 10)", {"generate_series"}),
    ("SELECT * FROM t WHERE a = lower(upper(b))", {"lower", "upper"}),
    ("SELECT * FROM t WHERE a IN (SELECT f(x) FROM s)", {"f"}),
    ("WITH x AS (SELECT g() AS v) SELECT * FROM x", {"g"}),
    ("INSERT INTO t VALUES (nextval('s'))", {"nextval"}),
    ("UPDATE t SET a = h(a) WHERE k(b)", {"h", "k"}),
    ("CALL s.proc(1, f(2))", {"s.proc", "f"}),
    ("CREATE TABLE t (a timestamptz DEFAULT clock_timestamp())", {"clock_timestamp"}),
    ("CREATE VIEW v AS SELECT f(x) FROM s", {"f"}),
    ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION s.trg()", {"s.trg"}),
    ("EXECUTE q(f(1))", {"f"}),
    ("EXPLAIN SELECT f()", {"f"}),
    ("SELECT EXTRACT(year FROM now())", {"pg_catalog.extract", "now"}),
]


@pytest.mark.parametrize(("sql", "functions"), FUNCTION_CASES)
def test_functions(sql: str, functions: set[str]) -> None:
    assert set(classify(sql).functions) == functions


# ---------------------------------------------------------------------------
# where_absent

WHERE_CASES: list[tuple[str, bool]] = [
    ("UPDATE t SET a = 1", True),
    ("UPDATE t SET a = 1 WHERE id = 2", False),
    ("UPDATE t SET a = 1 FROM s", True),
    ("UPDATE t SET a = s.a FROM s WHERE t.id = s.id", False),
    ("DELETE FROM t", True),
    ("DELETE FROM t WHERE true", False),
    ("DELETE FROM t USING s", True),
    ("DELETE FROM t WHERE CURRENT OF c", False),
    ("UPDATE t SET a = 1 WHERE CURRENT OF c", False),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", True),
    ("WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d", False),
    ("SELECT 1; DELETE FROM t", True),
    ("DELETE FROM t WHERE id = 1; UPDATE u SET a = 1", True),
    ("PREPARE q AS DELETE FROM t", True),
    ("EXPLAIN ANALYZE DELETE FROM t", True),
    ("EXPLAIN DELETE FROM t", False),  # planned, not run
    ("CREATE RULE r AS ON INSERT TO v DO INSTEAD DELETE FROM t", True),
    ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 1", False),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", False),
    ("TRUNCATE t", False),
    ("SELECT * FROM t", False),
]


@pytest.mark.parametrize(("sql", "absent"), WHERE_CASES)
def test_where_absent(sql: str, absent: bool) -> None:
    assert classify(sql).where_absent is absent


# ---------------------------------------------------------------------------
# opaque

OPAQUE_CASES: list[tuple[str, bool]] = [
    ("EXECUTE q", True),
    ("EXECUTE q(1)", True),
    ("CREATE TABLE t AS EXECUTE q", True),
    ("EXPLAIN ANALYZE EXECUTE q", True),
    ("DO $$ BEGIN NULL; END $$", True),
    ("SELECT 1; DO $$ BEGIN NULL; END $$", True),
    ("PREPARE q AS SELECT 1", False),
    ("EXPLAIN EXECUTE q", False),  # planned, not run
    ("CALL p()", False),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$", False),
    ("SELECT 1", False),
]


@pytest.mark.parametrize(("sql", "opaque"), OPAQUE_CASES)
def test_opaque(sql: str, opaque: bool) -> None:
    assert classify(sql).opaque is opaque


# ---------------------------------------------------------------------------
# Statement counting, empty text and bad text


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT 1", 1),
        ("SELECT 1;", 1),
        ("SELECT 1; SELECT 2", 2),
        ("SELECT 1;; ;SELECT 2;", 2),
        ("BEGIN; UPDATE t SET a = 1 WHERE id = 1; COMMIT;", 3),
    ],
)
def test_statement_count(sql: str, count: int) -> None:
    assert classify(sql).statement_count == count


def test_multi_statement_kinds_are_the_union() -> None:
    result = classify("BEGIN; DELETE FROM t WHERE id = 1; DROP TABLE u; COMMIT")
    assert set(result.kinds) == {"transaction", "delete", "drop"}
    assert set(result.tables_written) == {"t", "u"}


@pytest.mark.parametrize(
    "sql", ["", "   ", "\n\t", ";", ";;", "-- nothing", "/* nothing */", "/* a */ -- b\n ;"]
)
def test_empty_text(sql: str) -> None:
    assert classify(sql) == SqlClassification(kinds=frozenset({"empty"}), statement_count=0)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("garbage", 'syntax error at or near "garbage"'),
        ("SELECT * FROM", "syntax error at end of input"),
        ("SELEC 1", 'syntax error at or near "SELEC"'),
        ("SELECT 'unterminated", 'unterminated quoted string at or near "\'unterminated"'),
        ("SELECT 1 /* unterminated", 'unterminated /* comment at or near "/* unterminated"'),
        ("SELECT 1; DELET FROM t", 'syntax error at or near "DELET"'),
        ("SELECT 1\x00; DROP TABLE t", classifier.NUL_MESSAGE),
        ("\x00", classifier.NUL_MESSAGE),
        ("SELECT '\ud800'", classifier.ENCODING_MESSAGE),
    ],
)
def test_unparseable_text(sql: str, message: str) -> None:
    result = classify(sql)
    assert result.kinds == frozenset({"unparseable"})
    assert result.parse_error == message
    assert result.statement_count == 0
    assert not (result.tables_read or result.tables_written or result.functions)


def test_one_bad_statement_makes_the_whole_text_unparseable() -> None:
    # PostgreSQL rejects the whole string before running any of it.
    assert classify("DROP TABLE t; SELEC 1").kinds == frozenset({"unparseable"})


def test_nul_is_not_truncated_into_a_cached_statement() -> None:
    # libpg_query reads C strings: without the NUL check "SELECT 1\0..." would
    # look like (and share a cache entry with) "SELECT 1".
    assert classify("SELECT 1").kinds == frozenset({"select"})
    assert classify("SELECT 1\x00; DROP TABLE t").kinds == frozenset({"unparseable"})


def test_very_deep_expression_fails_closed() -> None:
    result = classify("SELECT 1" + " + 1" * 5000)
    assert result.kinds == frozenset({"unparseable"})
    assert result.parse_error in (classifier.TOO_DEEP_MESSAGE, "stack depth limit exceeded")


def test_moderately_deep_expression_classifies() -> None:
    result = classify("SELECT f(x)" + " + 1" * 100 + " FROM t")
    assert result.kinds == frozenset({"select"})
    assert result.functions == frozenset({"f"})


def test_deeply_parenthesised_expression_classifies() -> None:
    assert classify("SELECT " + "(" * 2000 + "1" + ")" * 2000).kinds == frozenset({"select"})


# ---------------------------------------------------------------------------
# Lexical tricks: PostgreSQL's lexer decides, so these must agree with it

TRICKY_CASES: list[tuple[str, set[str], int]] = [
    ("SELECT 1 /* ; DROP TABLE t; */", {"select"}, 1),
    ("SELECT 1 -- ; DROP TABLE t", {"select"}, 1),
    ("-- DROP TABLE t\nSELECT 1", {"select"}, 1),
    ("/* outer /* nested */ DROP TABLE t; still comment */ SELECT 1", {"select"}, 1),
    ("SEL/**/ECT 1", set(), 0),  # a comment splits a keyword: syntax error, not SELECT
    ("SELECT $$; DROP TABLE t; $$", {"select"}, 1),
    ("SELECT $tag$ $$; DROP TABLE t; $$ $tag$", {"select"}, 1),
    ("SELECT $$a$$; DROP TABLE t", {"select", "drop"}, 2),
    ("SELECT E'\\'; DROP TABLE t; --'", {"select"}, 1),
    ("SELECT 'it''s'; DELETE FROM t WHERE id = 1", {"select", "delete"}, 2),
    ("SELECT e'\\x27; DELETE FROM t'", {"select"}, 1),
    ('SELECT "DROP TABLE t" FROM x', {"select"}, 1),
    ("SELECT 'x' AS \"; DROP TABLE t; --\"", {"select"}, 1),
    ("DO $$BEGIN EXECUTE 'DROP TABLE t'; END$$", {"do-block"}, 1),
    ("NOTIFY ch, 'DROP TABLE t'", {"notify"}, 1),
    (
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT 1; COMMIT",
        {"transaction", "select"},
        3,
    ),
    ("BEGIN; DELETE FROM t WHERE true; ROLLBACK", {"transaction", "delete"}, 3),
]


@pytest.mark.parametrize(("sql", "expected", "count"), TRICKY_CASES)
def test_lexical_tricks(sql: str, expected: set[str], count: int) -> None:
    result = classify(sql)
    if count == 0:
        assert result.kinds == frozenset({"unparseable"})
    else:
        assert set(result.kinds) == expected
        assert result.statement_count == count


def test_plain_strings_are_read_with_standard_conforming_strings_on_and_off() -> None:
    """With standard_conforming_strings on (the default) a backslash in '...' is an
    ordinary character and this is one SELECT; a session that turned the setting off
    reads it as SELECT then DROP. The classification covers both readings."""
    result = classify("SELECT 'x\\' AS a, ' ; DROP TABLE t; -- '")
    assert set(result.kinds) == {"select", "drop"}
    assert result.tables_written == {"t"}


def test_unicode_escaped_identifier_is_decoded() -> None:
    # U&"d\0061t\+000061" is the identifier data.
    result = classify('SELECT * FROM U&"d\\0061t\\+000061"')
    assert result.tables_read == frozenset({"data"})


def test_unicode_escaped_identifier_with_custom_escape() -> None:
    result = classify("DELETE FROM U&\"!0073ecret\" UESCAPE '!' WHERE true")
    assert result.tables_written == frozenset({"secret"})


def test_unicode_escaped_string_does_not_hide_statements() -> None:
    assert kinds("SELECT U&'\\0027; DROP TABLE t; --'") == {"select"}


# ---------------------------------------------------------------------------
# Caches


def count_analyses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every text that classify() had to parse and walk."""
    calls: list[str] = []
    real: Callable[[str], tuple[SqlClassification, bool]] = classifier._analyse

    def counting(sql: str) -> tuple[SqlClassification, bool]:
        calls.append(sql)
        return real(sql)

    monkeypatch.setattr(classifier, "_analyse", counting)
    return calls


def test_repeated_text_is_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_analyses(monkeypatch)
    first = classify("SELECT * FROM cache_exact WHERE id = 1")
    second = classify("SELECT * FROM cache_exact WHERE id = 1")
    assert second is first
    assert len(calls) == 1


def test_literal_variant_shares_the_classification(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_analyses(monkeypatch)
    first = classify("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;")
    for aid in (1, 99999, -5):
        variant = classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
        assert variant is first
    assert classify("SELECT abalance FROM pgbench_accounts WHERE aid = 'x';") is first
    assert len(calls) == 1


def test_literal_variant_with_a_different_table_is_classified_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_analyses(monkeypatch)
    assert classify("SELECT * FROM alpha WHERE id = 1").tables_read == frozenset({"alpha"})
    assert classify("SELECT * FROM beta WHERE id = 2").tables_read == frozenset({"beta"})
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # libpg_query's fingerprint treats each of these pairs as equal
        ("SELECT * FROM a WHERE id = 1", "SELECT * FROM s.a WHERE id = 2"),
        ("SELECT * FROM tmp_123 WHERE id = 1", "SELECT * FROM tmp_456 WHERE id = 2"),
        ("DELETE FROM part_1 WHERE id = 1", "DELETE FROM part_2 WHERE id = 2"),
    ],
)
def test_names_the_fingerprint_ignores_are_not_conflated(first: str, second: str) -> None:
    a, b = classify(first), classify(second)
    assert (a.tables_read | a.tables_written) != (b.tables_read | b.tables_written)
    assert a == classifier._analyse(first)[0]
    assert b == classifier._analyse(second)[0]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("EXPLAIN (ANALYZE 1) DELETE FROM t", "EXPLAIN (ANALYZE 0) DELETE FROM t"),
        ("EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t"),
        ("SELECT set_config('role', 'a', false)", "SELECT set_config('work_mem', '1MB', false)"),
        ("SELECT set_config('work_mem', '1MB', false)", "SELECT set_config('role', 'a', false)"),
    ],
)
def test_results_that_depend_on_a_constant_are_not_shared(first: str, second: str) -> None:
    assert classify(first).kinds != classify(second).kinds


def test_explain_option_values_are_marked_as_read() -> None:
    # Today normalize() keeps EXPLAIN option values, but should it ever replace
    # them, the flag still keeps (ANALYZE 0) and (ANALYZE 1) apart.
    assert classifier._analyse("EXPLAIN (ANALYZE 1) DELETE FROM t")[1] is False
    assert classifier._analyse("EXPLAIN ANALYZE DELETE FROM t")[1] is True


def test_different_functions_are_not_conflated() -> None:
    assert classify("SELECT lower('a')").functions == frozenset({"lower"})
    assert classify("SELECT pg_read_file('b')").functions == frozenset({"pg_read_file"})


def test_long_text_is_classified_but_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_analyses(monkeypatch)
    sql = "SELECT 1 FROM long_t WHERE a IN (" + ", ".join(["1"] * 5000) + ")"
    assert len(sql) > classifier.MAX_CACHED_TEXT
    assert classify(sql).tables_read == frozenset({"long_t"})
    assert classify(sql).tables_read == frozenset({"long_t"})
    assert len(calls) == 2


def test_cached_results_equal_fresh_results() -> None:
    texts = [sql for sql, _ in KIND_CASES] + [sql for sql, _, _ in TABLE_CASES]
    for sql in texts + texts:
        assert classify(sql) == classifier._analyse(sql)[0], sql


def test_lru_cache_drops_least_recently_used_entry() -> None:
    cache = classifier._LruCache(max_entries=2, max_chars=1000)
    a, b, c = (classify(sql) for sql in ("SELECT 1", "DELETE FROM t", "BEGIN"))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # now "b" is the least recently used
    cache.put("c", c)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is a
    assert cache.get("c") is c


def test_lru_cache_is_bounded_by_characters() -> None:
    cache = classifier._LruCache(max_entries=100, max_chars=10)
    value = classify("SELECT 1")
    cache.put("x" * 6, value)
    cache.put("y" * 6, value)
    assert len(cache) == 1
    assert cache.get("x" * 6) is None
    assert cache.get("y" * 6) is value
    cache.put("y" * 6, value)  # replacing an entry does not count its key twice
    cache.put("z" * 4, value)
    assert len(cache) == 2


def test_module_caches_are_bounded() -> None:
    for i in range(classifier.CACHE_ENTRIES + 50):
        classify(f"SELECT * FROM bound_{i}")
    assert len(classifier._BY_TEXT) == classifier.CACHE_ENTRIES
    assert len(classifier._BY_SHAPE) == classifier.CACHE_ENTRIES


# ---------------------------------------------------------------------------
# Never raising, and properties of every result


def check_invariants(result: SqlClassification) -> None:
    assert isinstance(result, SqlClassification)
    assert result.kinds
    assert result.kinds <= classifier.KINDS
    if result.parse_error is not None:
        assert result.kinds == frozenset({"unparseable"})
        assert not result.parse_error.startswith(classifier.INTERNAL_ERROR_PREFIX)
    else:
        assert "unparseable" not in result.kinds
    if "empty" in result.kinds:
        assert result.kinds == frozenset({"empty"})
        assert result.statement_count == 0


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_a_classification(sql: str) -> None:
    check_invariants(classify(sql))


@settings(max_examples=300, deadline=None)
@given(st.binary().map(lambda raw: raw.decode("latin-1")))
def test_any_bytes_give_a_classification(sql: str) -> None:
    check_invariants(classify(sql))


SQL_WORDS = [
    "SELECT", "INSERT", "INTO", "UPDATE", "DELETE", "FROM", "WHERE", "WITH", "AS",
    "(", ")", ",", ";", "*", "=", "t", "s.u", "f(1)", "1", "'x'", "$$y$$", "VALUES",
    "SET", "a", "RETURNING", "JOIN", "ON", "true", "EXPLAIN", "ANALYZE", "COPY",
    "STDIN", "TO", "STDOUT", "CREATE", "TABLE", "DROP", "PREPARE", "EXECUTE", "q",
    "UNION", "MERGE", "USING", "WHEN", "MATCHED", "THEN", "DO", "NOTHING", "RECURSIVE",
    "CALL", "ROLE", "GRANT", "ALL", "ON", "TRUNCATE", "LATERAL", "BEGIN", "--", "/*", "*/",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(SQL_WORDS), max_size=25).map(" ".join))
def test_sql_like_token_soup_gives_a_consistent_classification(sql: str) -> None:
    result = classify(sql)
    check_invariants(result)
    assert result == classifier._analyse(sql)[0]


TEMPLATES = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
    "UPDATE pgbench_accounts SET abalance = abalance + {} WHERE aid = 1",
    "INSERT INTO pgbench_history (tid, delta) VALUES (1, {})",
    "SELECT * FROM t WHERE a = {} AND b IN ({}, 2)",
    "DELETE FROM t WHERE id = {}",
    "EXPLAIN (ANALYZE {}) DELETE FROM t",
    "SELECT set_config({}, 'x', false)",
    "SELECT * FROM t LIMIT {}",
]
LITERALS = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["'role'", "'work_mem'", "'x'", "0", "1", "true", "off", "1.5", "NULL"]),
    st.text(alphabet="abc' \\", max_size=5).map(lambda s: "'" + s.replace("'", "''") + "'"),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TEMPLATES), LITERALS, LITERALS)
def test_literal_variants_through_the_cache_match_fresh_classification(
    template: str, first: str, second: str
) -> None:
    classify(template.format(first, first))  # seed the literal-shape cache
    sql = template.format(second, second)
    through_the_cache = classify(sql)
    clear_caches()
    assert through_the_cache == classify(sql)
