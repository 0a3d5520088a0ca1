"""The statement tracker: results attributed to their commands, refusals put in place
of the answers to their stand-ins, in the order the target answers."""

from __future__ import annotations

from hoopd.protocols.postgres import backend as be
from hoopd.protocols.postgres import frontend as fe
from hoopd.protocols.postgres.codec import PostgresCodec, Role
from hoopd.protocols.postgres.tracker import StatementTracker

REFUSAL = be.ErrorResponse.build("42501", "hoopd: no")
READY = be.ReadyForQuery("I")


def _answers(tracker: StatementTracker, messages: list[object]) -> list[object]:
    """What the client gets for ``messages`` from the target (replacements applied)."""
    out = []
    for message in messages:
        replacement = tracker.replacement_for(message) if tracker.refusals_pending else None
        shown = replacement if replacement is not None else message
        tracker.result_for(shown)
        out.append(shown)
    return out


def test_simple_query_results_name_their_command() -> None:
    tracker = StatementTracker()
    query = fe.Query("select 1")
    command = tracker.command_for(query)
    assert command is not None and command.classification.kinds == {"select"}
    tracker.forwarded(query, command, 1)
    answer = tracker.result_for(be.CommandComplete("SELECT 1"))
    assert answer is not None
    number, result = answer
    assert number == 1 and result.tag == "SELECT 1" and result.rows == 1


def test_refused_query_is_answered_by_its_refusal_in_order() -> None:
    tracker = StatementTracker()
    first, refused, last = fe.Query("select 1"), fe.Query("drop table t"), fe.Query("select 2")
    tracker.forwarded(first, tracker.command_for(first), 1)
    tracker.forwarded(refused, tracker.command_for(refused), 2, REFUSAL)
    tracker.forwarded(last, tracker.command_for(last), 3)
    assert tracker.refusals_pending == 1
    # The target saw: select 1, the empty stand-in, select 2.
    target_answers = [
        be.CommandComplete("SELECT 1"),
        READY,
        be.EmptyQueryResponse(),
        READY,
        be.CommandComplete("SELECT 1"),
        READY,
    ]
    client_sees = _answers(tracker, target_answers)
    assert client_sees[2] == REFUSAL
    assert [m for m in client_sees if m != REFUSAL] == [
        m for m in target_answers if not isinstance(m, be.EmptyQueryResponse)
    ]
    assert tracker.refusals_pending == 0


def test_refused_result_is_recorded_against_the_refused_command() -> None:
    tracker = StatementTracker()
    refused = fe.Query("drop table t")
    tracker.forwarded(refused, tracker.command_for(refused), 7, REFUSAL)
    replacement = tracker.replacement_for(be.EmptyQueryResponse())
    assert replacement == REFUSAL
    answer = tracker.result_for(replacement)
    assert answer is not None
    number, result = answer
    assert number == 7 and result.error is not None and result.error["code"] == "42501"


def _extended(tracker: StatementTracker, sql: str, number: int, refusal: bool) -> None:
    for message in (fe.Parse("", sql), fe.Bind("", "", (), (), ()), fe.Describe("P", "")):
        tracker.command_for(message)
        tracker.forwarded(message, None, None)
    execute = fe.Execute("", 0)
    command = tracker.command_for(execute)
    assert command is not None and command.sql == sql
    tracker.forwarded(execute, command, number, REFUSAL if refusal else None)
    tracker.command_for(fe.Sync())
    tracker.forwarded(fe.Sync(), None, None)


def test_refused_execute_is_answered_in_place_of_the_missing_portal_error() -> None:
    tracker = StatementTracker()
    _extended(tracker, "delete from t", 1, refusal=True)
    _extended(tracker, "select 1", 2, refusal=False)
    missing_portal = be.ErrorResponse.build(
        "34000", 'portal "hoopd: refused statement" does not exist'
    )
    target_answers = [
        be.ParseComplete(),
        be.BindComplete(),
        be.NoData(),
        missing_portal,
        READY,
        be.ParseComplete(),
        be.BindComplete(),
        be.NoData(),
        be.CommandComplete("SELECT 1"),
        READY,
    ]
    client_sees = _answers(tracker, target_answers)
    assert client_sees[3] == REFUSAL
    assert missing_portal not in client_sees
    assert tracker.refusals_pending == 0


def test_an_earlier_error_skips_the_stand_in_and_its_refusal() -> None:
    tracker = StatementTracker()
    _extended(tracker, "delete from t", 1, refusal=True)
    bind_failed = be.ErrorResponse.build("08P01", "bind message supplies 1 parameters")
    client_sees = _answers(tracker, [be.ParseComplete(), bind_failed, READY])
    assert client_sees[1] == bind_failed  # what PostgreSQL said, as it said it
    assert tracker.refusals_pending == 0


def test_stand_ins_are_harmless_messages_the_codec_reads_back() -> None:
    codec = PostgresCodec(Role.SERVER)
    codec.receive_data(fe.StartupMessage((("user", "u"),)).encode())
    codec.next_event()
    tracker = StatementTracker()
    stand_ins = tracker.stand_in(fe.Query("drop table t")) + tracker.stand_in(fe.Execute("p", 0))
    codec.receive_data(stand_ins)
    messages, closed = codec.drain()
    assert messages == [fe.Query(""), fe.Execute("hoopd: refused statement", 0)]
    assert not closed


def test_the_refused_portal_stand_in_never_names_a_client_portal() -> None:
    tracker = StatementTracker()
    bind = fe.Bind("hoopd: refused statement", "", (), (), ())
    tracker.command_for(bind)
    stand_in = tracker.stand_in(fe.Execute("hoopd: refused statement", 0))
    assert stand_in == fe.Execute("hoopd: refused statement!", 0).encode()


def test_each_parse_is_judged_by_its_own_text_when_a_chunk_reuses_the_name() -> None:
    tracker = StatementTracker()
    first, second = fe.Parse("", "select 1"), fe.Parse("", "drop table t")
    for message in (first, second):  # a pipelining client: both in one chunk
        tracker.command_for(message)
    assert tracker.prepared(first).sql == "select 1"
    assert tracker.prepared(first).classification.kinds == {"select"}
    assert tracker.prepared(second).sql == "drop table t"
