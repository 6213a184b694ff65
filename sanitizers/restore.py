"""Put original values back into text written by the model, whole or as a stream of chunks.

Sans-IO: pure objects, no network, no asyncio. The outbound mapping holds two kinds of tokens:
placeholders (``[PERSON_1]``), matched tolerantly because models mangle them, and surrogates
(realistic fake values), matched case-insensitively with flexible whitespace on word boundaries.
Nothing here logs or prints a value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from itertools import takewhile

import regex

__all__ = ["Restorer", "StreamRestorer", "json_string_escape"]

# What counts as a placeholder key in the mapping; every other key is a surrogate.
_PLACEHOLDER_KEY = regex.compile(r"\[([A-Z][A-Z0-9_]*)_([1-9][0-9]*)\]")
# Reads back type, number and possessive from any placeholder variant the pattern accepts.
_PLACEHOLDER_TEXT = regex.compile(
    r"(?:\\*\[)?[ \t]*([A-Za-z0-9]+(?:(?:\\*_|[ \-])[A-Za-z0-9]+)*?)(?:\\*_|[ \-])([0-9]+)"
    r"((?:['’]|\\u2019)[sS])?[ \t]*(?:\\*\])?"
)
_TYPE_SEP = regex.compile(r"\\*[_ \-]")
_WS = regex.compile(r"\s+")
_WORD = regex.compile(r"\w")
_CONTEXT = 4  # already-emitted chars kept before the held tail; the longest lookbehind reads 2
_PAD, _MAX_WS, _MAX_DIGITS = 4, 16, 9  # bounds keep the reach of one match attempt finite
_BACK, _BACK_MAX = "[\\ \t", 8  # what (and how much) may precede a type word in a placeholder
_SCAN_MIN = 256  # below this, one regex scan is cheaper than the needle prefilter


def json_string_escape(value: str) -> str:
    """What goes between the quotes of a JSON string holding ``value``."""
    return json.dumps(value)[1:-1]


def _surrogate_word(word: str, json_mode: bool) -> tuple[str, int]:
    """Pattern for one surrogate word and the most characters it can span."""
    if not json_mode:
        return f"(?i:{regex.escape(word)})", len(word)
    parts, span = [], 0
    for ch in word:
        # Inside JSON a character may arrive \u-escaped, any case variant of it too; one that must
        # be escaped (", \, controls) only arrives escaped, and matching it raw would split a pair.
        variants = {v for v in (ch, ch.lower(), ch.upper()) if len(v) == 1}
        escaped = sorted({json_string_escape(v) for v in variants} - variants)
        alts = ([ch] if json.dumps(ch, ensure_ascii=False)[1:-1] == ch else []) + escaped
        parts.append(f"(?:{'|'.join(map(regex.escape, alts))})" if escaped else regex.escape(ch))
        span += max(map(len, alts))
    return f"(?i:{''.join(parts)})", span


class Restorer:
    """Restores one request's mapping (outbound token -> original) in model output.

    Matching is leftmost-first: among tokens starting at the same place the longest wins.
    Bare placeholders need underscores ("person 1" in prose is left alone); whitespace runs inside
    a surrogate match up to 16 characters. With ``escape`` the text is the inside of a JSON string.
    """

    __slots__ = ("_placeholders", "_surrogates", "_escape", "_json", "_pattern", "_hold_src",
                 "_hold", "_reach", "_needles")

    def __init__(self, mapping: Mapping[str, str], *, escape: Callable[[str], str] | None = None) -> None:
        # escape: applied to every inserted original, e.g. json_string_escape for JSON string text.
        self._escape = escape
        self._json = escape is not None
        self._placeholders: dict[str, str] = {}
        self._surrogates: dict[str, str] = {}  # canonical text -> original
        self._pattern: regex.Pattern[str] | None = None
        self._hold: regex.Pattern[str] | None = None
        self._hold_src, self._reach = "", 0
        types: set[str] = set()
        surrogates: dict[str, str] = {}
        for token, original in mapping.items():
            if m := _PLACEHOLDER_KEY.fullmatch(token):
                self._placeholders[token] = original
                types.add(m.group(1))
            elif words := tuple(w for w in _WS.split(token) if w):
                surrogates.setdefault(words, original)
        # Longest first: at one position the alternation takes the first alternative that matches.
        ordered = sorted(surrogates, key=lambda ws: len(" ".join(ws)), reverse=True)
        for words in ordered:
            self._surrogates.setdefault(" ".join(words).casefold(), surrogates[words])
        self._needles: list[tuple[str, bool]] | None = []
        if types or ordered:
            self._build(sorted(types, key=len, reverse=True), ordered)

    def _build(self, types: list[str], surrogates: list[tuple[str, ...]]) -> None:
        """One pattern; surrogates are told apart by their text, not by groups (a capture group
        per alternative makes a large alternation ~10x slower)."""
        j = self._json
        # Inside JSON text a markdown backslash arrives doubled; leaving half of a pair in front of
        # an inserted value would break the JSON, so only a whole, unpreceded pair is consumed.
        bs = r"(?:\\\\)?" if j else r"\\?"
        open_ = r"(?:(?<!\\)\\\\)?\[" if j else r"\\?\["
        # In JSON text "\nPERSON_1" has a letter before the token although the decoded text has not;
        # and no match may start right after a backslash, inside an escape such as \t or \u00e9.
        lb = r"(?:(?<![\w\\])|(?<=\\[bfnrt]))" if j else r"(?<!\w)"
        poss = r"(?:['’]|\\u2019)[sS]" if j else r"['’][sS]"
        ws = rf"(?:\s|\\[nrt]){{1,{_MAX_WS}}}" if j else rf"\s{{1,{_MAX_WS}}}"
        pad = rf"[ \t]{{0,{_PAD}}}"
        sep, usep, num = rf"(?:{bs}_|[ \-])", rf"{bs}_", rf"[0-9]{{1,{_MAX_DIGITS}}}"
        close = rf"(?:{poss})?{pad}{bs}\]"
        word_alts, other_alts, reach = [], [], 0
        needles: dict[str, bool] = {}
        if types:
            reach = max(3 * len(t) for t in types) + 2 * _PAD + _MAX_DIGITS + 20
            for t in types:
                needles[t.split("_")[0].lower()] = True
        for words in surrogates:
            parts = [_surrogate_word(w, j) for w in words]
            alt = ws.join(p for p, _ in parts) + (r"(?!\w)" if _WORD.match(words[-1][-1]) else "")
            if _WORD.match(words[0]):
                word_alts.append(alt)
            else:
                other_alts.append(rf"(?<!\\){alt}" if j else alt)
            reach = max(reach, sum(n for _, n in parts) + 2 * _MAX_WS * (len(words) - 1))
            # Needle: the start of the first word, up to a character that may arrive JSON-escaped.
            needle = "".join(takewhile(lambda c: json_string_escape(c) == c, words[0])) if j else words[0]
            if needle:
                needles.setdefault(needle.casefold(), False)
            else:
                self._needles = None  # no literal to look for: always scan with the regex
        alts = []
        if types:
            kinds = "|".join(sep.join(t.split("_")) for t in types)
            # Group 1 = an opening bracket. Without one, the number needs a closing bracket or an
            # underscore before it, so prose such as "person 1" is left alone.
            alts.append(rf"(?:({open_}){pad}|{lb})(?i:{kinds})"
                        rf"(?:{sep}{num}{close}|(?(1){sep}|{usep}){num}(?!\w))")
        if word_alts:
            alts.append(rf"{lb}(?:{'|'.join(word_alts)})")
        alts += other_alts
        src = "|".join(alts)
        self._pattern = regex.compile(src)
        # Never completes, so a partial search reports the leftmost start whose match could still
        # depend on text not received yet (a plain partial search prefers complete matches, e.g.
        # "Maria" while "Maria Lo" may still become "Maria Lopez").
        self._hold_src = f"(?:{src})(?!)"  # compiled on first use: restore() never needs it
        self._reach = reach + 8  # + lookahead and slack
        if self._needles is not None:
            self._needles = list(needles.items())

    def __bool__(self) -> bool:
        return self._pattern is not None

    def restore(self, text: str) -> str:
        """Restore a complete text."""
        return text if self._pattern is None else self._sub(text, 0)

    def stream(self) -> StreamRestorer:
        """A new, independent streaming state (one per choice or tool call)."""
        return StreamRestorer(self)

    def _replacement(self, m: regex.Match[str]) -> str | None:
        """The restored text for a match, or None when it is not a mapped token (left as is)."""
        text = m.group()
        original = self._surrogates.get(_canon(_json_decode(text) if self._json else text))
        suffix = ""
        if original is None:
            p = _PLACEHOLDER_TEXT.fullmatch(text)
            if p is None:
                return None
            kind = _TYPE_SEP.sub("_", p.group(1)).upper()
            original = self._placeholders.get(f"[{kind}_{p.group(2)}]")
            if original is None:
                return None  # a placeholder the model invented
            suffix = p.group(3) or ""
        return (self._escape(original) if self._escape else original) + suffix

    def _matches(self, text: str, pos: int, limit: int) -> Iterator[regex.Match[str]]:
        """Matches starting in [pos, limit), exactly as ``finditer(text, pos)`` would find them."""
        assert self._pattern is not None
        starts = self._candidates(text, pos, limit) if limit - pos >= _SCAN_MIN else None
        if starts is None:
            for m in self._pattern.finditer(text, pos):
                if m.start() >= limit:
                    return
                yield m
            return
        # Every match contains a needle at (or a few bracket chars after) its start, so trying
        # only those positions, in order, finds the same matches as a full scan.
        for start in starts:
            if start >= pos and (m := self._pattern.match(text, start)):
                yield m
                pos = m.end()

    def _candidates(self, text: str, pos: int, limit: int) -> list[int] | None:
        """Positions where a match could start, or None when the prefilter cannot be exact."""
        folded = text.casefold()
        if self._needles is None or len(folded) != len(text):
            return None  # a fold changed length (e.g. "ß"): positions would not line up
        starts: set[int] = set()
        for needle, back in self._needles:
            i = folded.find(needle, pos)
            while i != -1 and i < limit + _BACK_MAX:
                if i < limit:
                    starts.add(i)
                j = i
                while back and j > pos and i - j < _BACK_MAX and text[j - 1] in _BACK:
                    j -= 1
                    if j < limit:
                        starts.add(j)
                i = folded.find(needle, i + 1)
        return sorted(starts)

    def _sub(self, text: str, pos: int) -> str:
        """Restore ``text[pos:]``; text before pos is only context for lookbehinds."""
        out: list[str] = []
        last = pos
        for m in self._matches(text, pos, len(text)):
            rep = self._replacement(m)
            if rep is not None:
                out += (text[last : m.start()], rep)
                last = m.end()
        if not out:
            return text[pos:] if pos else text
        out.append(text[last:])
        return "".join(out)


def _canon(text: str) -> str:
    """Case- and whitespace-insensitive form, equal for texts the surrogate pattern equates
    (simple case folding, used by the pattern, never separates what casefold() joins)."""
    return _WS.sub(" ", text).casefold()


def _json_decode(fragment: str) -> str:
    try:
        return json.loads(f'"{fragment}"', strict=False)
    except ValueError:
        return fragment


class StreamRestorer:
    """Streaming state: ``"".join(feed(c) for c in chunks) + flush() == restore("".join(chunks))``.

    Only a tail that could still become or extend a match is held back.
    """

    __slots__ = ("_r", "_ctx", "_buf")

    def __init__(self, restorer: Restorer) -> None:
        self._r = restorer
        self._ctx = ""  # already-emitted input before _buf, read only by lookbehinds
        self._buf = ""  # input received but not emitted yet

    def feed(self, text: str) -> str:
        """Take the next chunk; return the text that is safe to emit now (possibly "")."""
        r = self._r
        if r._pattern is None:
            return text
        data = self._ctx + self._buf + text
        pos = len(self._ctx)
        out: list[str] = []
        while True:
            hold = self._hold_start(data, pos)
            # A match starting before `hold` cannot depend on later text, so it is final.
            for m in r._matches(data, pos, hold):
                rep = r._replacement(m)
                out.append(data[pos : m.end()] if rep is None else data[pos : m.start()] + rep)
                pos = m.end()
            if pos <= hold:
                break  # else a match ran over the hold point: look again from its end
        out.append(data[pos:hold])
        self._ctx = data[max(0, hold - _CONTEXT) : hold]
        self._buf = data[hold:]
        return "".join(out)

    def flush(self) -> str:
        """End of stream: return everything still held, restored (a cut token that resolves to a
        mapped one is restored, anything else is returned as is). The state is reset."""
        data, start = self._ctx + self._buf, len(self._ctx)
        self._ctx = self._buf = ""
        if self._r._pattern is None or start == len(data):
            return data[start:]
        return self._r._sub(data, start)

    def _hold_start(self, data: str, pos: int) -> int:
        """Leftmost position >= pos where a match could still depend on text not yet received."""
        r = self._r
        if r._hold is None:
            r._hold = regex.compile(r._hold_src)
        # An attempt reads at most _reach chars, so earlier starts cannot touch the end.
        m = r._hold.search(data, max(pos, len(data) - r._reach), partial=True)
        return len(data) if m is None else m.start()
