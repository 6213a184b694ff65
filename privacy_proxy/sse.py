"""Sans-IO Server-Sent Events decoding and encoding.

The decoder follows the WHATWG "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
and accepts the byte stream split anywhere: inside a line, between ``\\r`` and
``\\n``, or inside a multi-byte UTF-8 character.  It does no I/O, so the proxy
can drive it from any transport and tests can drive it from plain bytes.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "SSEDecoder", "encode_event", "encode"]

# Any of the three line terminators the spec accepts; used by the encoder so a
# value can never smuggle an extra line (or an early dispatch) into the stream.
_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    ``event`` is ``None`` for the default type ("message"); ``id`` is the last
    event ID seen so far on the stream (it persists across events, as in the
    spec); ``retry`` is set only on the event whose block carried a valid
    ``retry:`` field.
    """

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental event-stream parser: ``feed`` bytes, get complete events.

    Cost per ``feed`` is proportional to the chunk: a partial line is kept as a
    list of fragments and joined once, when its terminator arrives, so a long
    line delivered in many tiny chunks stays linear.
    """

    __slots__ = (
        "_utf8",
        "_tail",
        "_pending_cr",
        "_started",
        "_closed",
        "_data",
        "_event",
        "_block_retry",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        # errors="replace" matches the spec's "UTF-8 decode" (U+FFFD for bad bytes).
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail: list[str] = []  # fragments of the current, unterminated line
        self._pending_cr = False  # last chunk ended in "\r"; a leading "\n" belongs to it
        self._started = False  # whether the leading BOM check has been done
        self._closed = False
        self._data: list[str] = []
        self._event: str | None = None
        self._block_retry: int | None = None
        #: The last event ID buffer (persists across events, per spec).
        self.last_event_id: str | None = None
        #: The latest valid ``retry:`` value (reconnection time in ms), if any.
        self.retry: int | None = None

    @property
    def has_pending(self) -> bool:
        """True if bytes were received that have not become a dispatched event.

        After ``close()`` this tells whether the stream was cut mid-event (the
        pending part was discarded, as the spec requires).
        """
        return bool(
            self._tail
            or self._data
            or self._event is not None
            or self._block_retry is not None
            or self._utf8.getstate()[0]
        )

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume the next piece of the byte stream; return events completed by it."""
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() after close()")
        return self._feed_text(self._utf8.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """Signal end of input.

        Per spec an event not terminated by a blank line is discarded, so this
        always returns ``[]``; check ``has_pending`` to detect a truncated stream.
        """
        if not self._closed:
            self._closed = True
            # Flush the UTF-8 decoder so a dangling partial character shows up in
            # has_pending as an unterminated line.
            rest = self._utf8.decode(b"", final=True)
            if rest:
                self._feed_text(rest)
        return []

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            # Nothing decoded yet (e.g. half a UTF-8 char): keep _pending_cr as is.
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._pending_cr:
            self._pending_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        has_cr = "\r" in text
        if not has_cr and "\n" not in text:
            self._tail.append(text)  # hot path: a fragment of a longer line
            return []
        if has_cr:
            # A trailing "\r" already ends its line; remember it so that a "\n"
            # opening the next chunk is not taken for a second, empty line.
            self._pending_cr = text[-1] == "\r"
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        else:
            lines = text.split("\n")
        rest = lines.pop()  # after the last terminator: an unterminated line or ""
        if self._tail:
            self._tail.append(lines[0])
            lines[0] = "".join(self._tail)
            self._tail = []
        if rest:
            self._tail.append(rest)
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                self._dispatch(events)
            elif line[0] != ":":  # lines starting with ":" are comments
                self._field(line)
        return events

    def _field(self, line: str) -> None:
        colon = line.find(":")
        if colon == -1:
            name, value = line, ""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._block_retry = self.retry = int(value)
        # Any other field name is ignored, per spec.

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        data, event, retry = self._data, self._event, self._block_retry
        self._data = []
        self._event = None
        self._block_retry = None
        if not data:
            return  # a block without data lines is not dispatched
        events.append(
            ServerSentEvent(
                data="\n".join(data),
                event=event or None,  # empty type means the default, "message"
                id=self.last_event_id,
                retry=retry,
            )
        )


def encode_event(
    data: str,
    event: str | None = None,
    *,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Serialise one event as UTF-8, ending with the blank line that dispatches it.

    Each line of ``data`` (split on ``\\r\\n``, ``\\r`` or ``\\n``) becomes its
    own ``data:`` line, so ``SSEDecoder`` returns ``data`` with its line breaks
    normalised to ``\\n``.
    """
    parts: list[str] = []
    if event is not None:
        _check_single_line("event", event)
        parts.append(f"event: {event}\n")
    if id is not None:
        _check_single_line("id", id)
        if "\0" in id:
            raise ValueError("SSE id must not contain NUL")
        parts.append(f"id: {id}\n")
    if retry is not None:
        if retry < 0:
            raise ValueError("SSE retry must be a non-negative integer")
        parts.append(f"retry: {retry}\n")
    if "\n" in data or "\r" in data:
        parts.extend(f"data: {line}\n" for line in _EOL.split(data))
    else:
        parts.append(f"data: {data}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode(ev: ServerSentEvent) -> bytes:
    """Serialise a decoded event back to the wire (id and retry included)."""
    return encode_event(ev.data, ev.event, id=ev.id, retry=ev.retry)


def _check_single_line(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE {name} must not contain line breaks")
