"""Hypothesis strategies for every PostgreSQL message the codec models.

Every strategy produces *valid* messages: strings hold no NUL and survive the
UTF-8/surrogateescape round trip, integers fit their wire fields, and counts agree
with each other where the protocol says they must (Bind's format codes).
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import strategies as st

from hoopd.protocols.postgres import backend as be
from hoopd.protocols.postgres import frontend as fe
from hoopd.protocols.postgres.bidirectional import CopyData, CopyDone, Unknown
from hoopd.protocols.postgres.codec import MAX_STARTUP_PACKET, BackendMessage, FrontendMessage

INT16 = st.integers(-(2**15), 2**15 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
UINT32 = st.integers(0, 2**32 - 1)
UINT16 = st.integers(0, 2**16 - 1)
BYTE = st.integers(0, 255)

# Real clients mostly send UTF-8, but the gateway must carry any client encoding
# unchanged, so also build strings from arbitrary NUL-free bytes.
_unicode_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
    max_size=40,
)
_raw_text = st.binary(max_size=40).map(
    lambda raw: raw.replace(b"\0", b"").decode("utf-8", "surrogateescape")
)
TEXT = st.one_of(_unicode_text, _raw_text)
NONEMPTY_TEXT = TEXT.filter(bool)

PAYLOAD = st.binary(max_size=300)
NULLABLE = st.one_of(st.none(), PAYLOAD)
SECRET = st.binary(min_size=4, max_size=256)


# ------------------------------------------------------------------ frontend

ssl_requests = st.just(fe.SSLRequest())
gssenc_requests = st.just(fe.GSSENCRequest())
cancel_requests = st.builds(fe.CancelRequest, process_id=UINT32, secret=SECRET)
startup_messages = st.builds(
    fe.StartupMessage,
    parameters=st.lists(st.tuples(NONEMPTY_TEXT, TEXT), max_size=12).map(tuple),
    minor_version=st.one_of(st.just(0), UINT16),
).filter(lambda message: len(message.encode()) <= MAX_STARTUP_PACKET)

password_messages = st.builds(fe.PasswordMessage, data=PAYLOAD)
queries = st.builds(fe.Query, sql=TEXT)
parses = st.builds(
    fe.Parse,
    statement=TEXT,
    sql=TEXT,
    param_types=st.lists(UINT32, max_size=20).map(tuple),
)


@st.composite
def binds(draw: st.DrawFn) -> fe.Bind:
    params = tuple(draw(st.lists(NULLABLE, max_size=12)))
    format_count = draw(st.sampled_from(sorted({0, 1, len(params)})))
    return fe.Bind(
        portal=draw(TEXT),
        statement=draw(TEXT),
        param_formats=tuple(draw(st.lists(INT16, min_size=format_count, max_size=format_count))),
        params=params,
        result_formats=tuple(draw(st.lists(INT16, max_size=12))),
    )


executes = st.builds(fe.Execute, portal=TEXT, max_rows=INT32)
describes = st.builds(fe.Describe, kind=st.sampled_from(["S", "P"]), name=TEXT)
closes = st.builds(fe.Close, kind=st.sampled_from(["S", "P"]), name=TEXT)
function_calls = st.builds(
    fe.FunctionCall,
    function_oid=UINT32,
    arg_formats=st.lists(INT16, max_size=8).map(tuple),
    args=st.lists(NULLABLE, max_size=8).map(tuple),
    result_format=INT16,
)
copy_fails = st.builds(fe.CopyFail, message=TEXT)
copy_data = st.builds(CopyData, data=PAYLOAD)
copy_done = st.just(CopyDone())

STARTUP_PHASE_MESSAGES: st.SearchStrategy[FrontendMessage] = st.one_of(
    ssl_requests, gssenc_requests, cancel_requests, startup_messages
)

TYPED_FRONTEND_MESSAGES: st.SearchStrategy[FrontendMessage] = st.one_of(
    password_messages,
    queries,
    parses,
    binds(),
    executes,
    describes,
    closes,
    st.just(fe.Sync()),
    st.just(fe.Flush()),
    st.just(fe.Terminate()),
    function_calls,
    copy_fails,
    copy_data,
    copy_done,
)


# ------------------------------------------------------------------- backend

authentications = st.builds(be.Authentication, code=INT32, payload=PAYLOAD)
backend_key_data = st.builds(be.BackendKeyData, process_id=UINT32, secret=SECRET)
parameter_statuses = st.builds(be.ParameterStatus, name=TEXT, value=TEXT)
ready_for_query = st.builds(be.ReadyForQuery, status=st.sampled_from(["I", "T", "E"]))
field_descriptions = st.builds(
    be.FieldDescription,
    name=TEXT,
    table_oid=UINT32,
    column_number=INT16,
    type_oid=UINT32,
    type_size=INT16,
    type_modifier=INT32,
    format_code=INT16,
)
row_descriptions = st.builds(
    be.RowDescription, fields=st.lists(field_descriptions, max_size=8).map(tuple)
)
data_rows = st.lists(NULLABLE, max_size=12).map(
    lambda values: be.DataRow.from_values(tuple(values))
)
command_completes = st.builds(be.CommandComplete, tag=TEXT)
_FIELDS = st.lists(
    st.tuples(st.integers(1, 255).map(chr), TEXT),
    max_size=10,
).map(tuple)
error_responses = st.builds(be.ErrorResponse, fields=_FIELDS)
notice_responses = st.builds(be.NoticeResponse, fields=_FIELDS)
notification_responses = st.builds(
    be.NotificationResponse, process_id=UINT32, channel=TEXT, payload=TEXT
)
parameter_descriptions = st.builds(
    be.ParameterDescription, type_oids=st.lists(UINT32, max_size=20).map(tuple)
)
copy_responses = st.builds(
    be.CopyResponse,
    tag=st.sampled_from([b"G", b"H", b"W"]),
    overall_format=BYTE,
    column_formats=st.lists(INT16, max_size=12).map(tuple),
)
function_call_responses = st.builds(be.FunctionCallResponse, value=NULLABLE)
negotiate_protocol_versions = st.builds(
    be.NegotiateProtocolVersion,
    newest_minor=INT32,
    unrecognized_options=st.lists(TEXT, max_size=6).map(tuple),
)

#: The backend message types of protocol 3.0 (documentation, "Message Formats").
MODELLED_BACKEND_TAGS = frozenset(bytes([tag]) for tag in b"RKSZTDCENAtGHWVvI123nsdc")
#: Every other tag byte: the client-role codec carries such messages as Unknown.
UNKNOWN_BACKEND_TAGS = sorted(
    bytes([tag]) for tag in range(256) if bytes([tag]) not in MODELLED_BACKEND_TAGS
)
unknown_messages = st.builds(Unknown, tag=st.sampled_from(UNKNOWN_BACKEND_TAGS), body=PAYLOAD)

BACKEND_MESSAGES: st.SearchStrategy[BackendMessage] = st.one_of(
    authentications,
    backend_key_data,
    parameter_statuses,
    ready_for_query,
    row_descriptions,
    data_rows,
    command_completes,
    error_responses,
    notice_responses,
    notification_responses,
    parameter_descriptions,
    copy_responses,
    function_call_responses,
    negotiate_protocol_versions,
    st.just(be.EmptyQueryResponse()),
    st.just(be.ParseComplete()),
    st.just(be.BindComplete()),
    st.just(be.CloseComplete()),
    st.just(be.NoData()),
    st.just(be.PortalSuspended()),
    copy_data,
    copy_done,
    unknown_messages,
)


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points (possibly into single bytes)."""
    if len(data) < 2:
        return [data] if data else []
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=min(len(data), 40)))
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[start:end] for start, end in pairwise(bounds)]
