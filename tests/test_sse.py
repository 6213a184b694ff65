"""Tests for the sans-IO SSE decoder/encoder."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_proxy.sse import ServerSentEvent, SSEDecoder, encode, encode_event


def decode_all(chunks: list[bytes]) -> tuple[list[ServerSentEvent], SSEDecoder]:
    dec = SSEDecoder()
    out: list[ServerSentEvent] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    out.extend(dec.close())
    return out, dec


def bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


# --- unit cases ---------------------------------------------------------------


def test_single_event() -> None:
    events, dec = decode_all([b"data: hello\n\n"])
    assert events == [ServerSentEvent("hello")]
    assert not dec.has_pending


def test_multiline_data_joined_with_newline() -> None:
    events, _ = decode_all([b"data: a\ndata: b\ndata:\n\n"])
    assert events == [ServerSentEvent("a\nb\n")]


def test_only_one_space_removed_and_colonless_field() -> None:
    events, _ = decode_all([b"data:  two\n\ndata:none\n\ndata\n\n"])
    assert [e.data for e in events] == [" two", "none", ""]


def test_comments_and_unknown_fields_ignored() -> None:
    raw = b": keep-alive\n:another\nfoo: bar\ndata: x\n: mid\n\n"
    events, _ = decode_all([raw])
    assert events == [ServerSentEvent("x")]


def test_event_type_id_retry() -> None:
    raw = b"event: delta\nid: 7\nretry: 1500\ndata: {}\n\ndata: next\n\nretry: x1\nevent:\ndata: y\n\n"
    events, dec = decode_all([raw])
    assert events == [
        ServerSentEvent("{}", event="delta", id="7", retry=1500),
        ServerSentEvent("next", id="7"),  # the last event id persists; type resets
        ServerSentEvent("y", id="7"),  # invalid retry ignored; empty type = default
    ]
    assert dec.retry == 1500 and dec.last_event_id == "7"


def test_id_with_nul_ignored() -> None:
    events, _ = decode_all([b"id: a\x00b\ndata: x\n\n"])
    assert events == [ServerSentEvent("x", id=None)]


def test_block_without_data_not_dispatched() -> None:
    events, dec = decode_all([b"event: ping\n\n\n\nid: 3\n\ndata: z\n\n"])
    assert events == [ServerSentEvent("z", id="3")]
    assert not dec.has_pending


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    raw = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode_all([raw])[0] == [ServerSentEvent("a\nb"), ServerSentEvent("c")]
    assert decode_all(bytewise(raw))[0] == [ServerSentEvent("a\nb"), ServerSentEvent("c")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # "\r" ends chunk 1, "\n" starts chunk 2: one terminator, not an empty line.
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\ndata: b\r") == []
    assert dec.feed(b"\n\r") == [ServerSentEvent("a\nb")]
    assert dec.feed(b"\n") == []  # the "\n" of the blank line's CRLF
    assert not dec.has_pending


def test_cr_pending_survives_empty_chunk_and_split_utf8() -> None:
    dec = SSEDecoder()
    euro = "€".encode()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"") == []  # decodes to nothing: the pending "\r" must survive
    assert dec.feed(b"\ndata: " + euro[:1]) == []
    assert dec.feed(euro[1:2]) == []
    assert dec.feed(euro[2:] + b"\r\r") == [ServerSentEvent("a\n€")]


def test_multibyte_split_everywhere() -> None:
    raw = encode_event("héllo 世界 🙂 done")
    events, dec = decode_all(bytewise(raw))
    assert events == [ServerSentEvent("héllo 世界 🙂 done")]
    assert not dec.has_pending


def test_invalid_utf8_replaced() -> None:
    events, _ = decode_all([b"data: a\xffb\n\n"])
    assert events == [ServerSentEvent("a\ufffdb")]


def test_leading_bom_stripped_once() -> None:
    events, _ = decode_all([b"\xef\xbb", b"\xbfdata: x\n\ndata: \xef\xbb\xbfy\n\n"])
    assert events == [ServerSentEvent("x"), ServerSentEvent("\ufeffy")]


@pytest.mark.parametrize(
    "raw",
    [b"data: partial", b"data: complete line\n", b"event: e\n", b"data: x\n\ndata: \xe2\x82"],
)
def test_truncated_stream_not_dispatched_but_pending(raw: bytes) -> None:
    dec = SSEDecoder()
    events = dec.feed(raw)
    assert dec.close() == []
    assert all(e.data != "partial" for e in events)
    assert dec.has_pending


def test_has_pending_false_between_events() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: x\n\n: comment\n")
    assert not dec.has_pending  # a comment line leaves nothing pending
    dec.feed(b"data")
    assert dec.has_pending


def test_feed_after_close_raises() -> None:
    dec = SSEDecoder()
    dec.close()
    with pytest.raises(RuntimeError):
        dec.feed(b"data: x\n\n")


def test_openai_style_stream() -> None:
    raw = b'data: {"choices":[]}\n\ndata: [DONE]\n\n'
    events, _ = decode_all(bytewise(raw))
    assert [e.data for e in events] == ['{"choices":[]}', "[DONE]"]


def test_encode_event_format() -> None:
    assert encode_event("x") == b"data: x\n\n"
    assert encode_event("a\nb\r\nc\rd", "delta") == b"event: delta\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("") == b"data: \n\n"
    assert encode_event("x", id="1", retry=10) == b"id: 1\nretry: 10\ndata: x\n\n"
    with pytest.raises(ValueError):
        encode_event("x", event="bad\nname")


def test_encode_roundtrip() -> None:
    ev = ServerSentEvent(" lead\n\ntrail ", event="e", id="9", retry=3)
    assert decode_all([encode(ev)])[0] == [ev]


def test_long_line_in_tiny_chunks_is_linear() -> None:
    # 1 MB line fed 4 bytes at a time: quadratic buffering would take minutes.
    payload = "x" * 1_000_000
    raw = encode_event(payload)
    dec = SSEDecoder()
    out: list[ServerSentEvent] = []
    start = time.perf_counter()
    for i in range(0, len(raw), 4):
        out.extend(dec.feed(raw[i : i + 4]))
    assert time.perf_counter() - start < 5.0
    assert out == [ServerSentEvent(payload)]


# --- property: any chunking decodes to the same events -----------------------

# Tokens rather than single characters so "data:"-looking text and CRLF pairs
# inside values come up often.
_text = st.lists(
    st.sampled_from([*"ab :\t\r\nxé世🙂\u2028\x0b{}\"", "data:", "\r\n", ": "]),
    max_size=20,
).map("".join)
_name = st.text(alphabet=st.sampled_from(list("ab :é世🙂-")), max_size=8)


@st.composite
def _events(draw: st.DrawFn) -> list[tuple[str, str | None]]:
    return draw(st.lists(st.tuples(_text, st.none() | _name), max_size=6))


@st.composite
def _stream(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    events = draw(_events())
    body = b""
    expected: list[ServerSentEvent] = []
    for data, name in events:
        if draw(st.booleans()):
            body += b": comment \xf0\x9f\x99\x82\n"
        body += encode_event(data, name)
        expected.append(ServerSentEvent(re.sub(r"\r\n|\r", "\n", data), event=name or None))
    # Every "\n" in the encoded stream is a line terminator (data had its line
    # breaks split into separate data: lines), so re-terminate each line freely.
    lines = body.split(b"\n")
    eols = draw(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=len(lines), max_size=len(lines)))
    for i in range(1, len(lines) - 1):
        # "\r" then an empty "\n"-ended line would read as one CRLF (per spec).
        if eols[i - 1] == b"\r" and not lines[i] and eols[i] == b"\n":
            eols[i] = b"\r\n"
    raw = b"".join(line + eol for line, eol in zip(lines[:-1], eols)) + lines[-1]
    return raw, expected


@settings(max_examples=300, deadline=None)
@given(stream=_stream(), data=st.data())
def test_any_chunking_decodes_the_same(stream: tuple[bytes, list[ServerSentEvent]], data: st.DataObject) -> None:
    raw, expected = stream
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=20)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    events, dec = decode_all(chunks)
    assert events == expected
    assert not dec.has_pending
    assert decode_all(bytewise(raw))[0] == expected
