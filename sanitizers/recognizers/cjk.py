"""What the East Asian rules share (see `sanitizers.recognizers.east_asian`): script ranges, the data files,
the gazetteer of places and well-known organizations (one Aho-Corasick pass), and splitting a name into
known words."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from sanitizers.types import Detection

RECOGNIZER = "EastAsianRecognizer"
_DATA = Path(__file__).resolve().parent / "data"

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005\u3007"
HIRA = "\u3041-\u309f"
KATA = "\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
HANGUL = "\uac00-\ud7a3"
IS_HAN = re.compile(f"[{HAN}]")
IS_KANA = re.compile(f"[{HIRA}{KATA}]")
IS_KATAKANA = re.compile(f"[{KATA}]")
IS_HANGUL = re.compile(f"[{HANGUL}]")
HANGUL_RUN = re.compile(f"[{HANGUL}]+")


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _read_data(name: str) -> list[str]:
    lines = (_DATA / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# --- gazetteer: places and well-known organizations -------------------------------------------------------

# What may follow a Korean name inside its word: nothing, or a particle ("서울에서", "미국의").
KO_PARTICLES = word_set(
    "은 는 이 가 을 를 의 에 에서 에게 로 으로 와 과 도 만 까지 부터 처럼 보다 이나 나 랑 이랑 에는 에서는 에도 에서도 "
    "으로는 로는 까지는 부터는 에서의 과의 와의 으로의 로의 인 산 시 측 쪽"
)


@functools.cache
def _automaton():  # type: ignore[no-untyped-def]
    import ahocorasick

    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for entity, score, name in (("LOCATION", 0.6, "east_asian_places.txt"), ("ORGANIZATION", 0.6, "east_asian_organizations.txt")):
        for word in _read_data(name):
            automaton.add_word(word, (word, entity, score))
    automaton.make_automaton()
    return automaton


@functools.cache
def place_names() -> frozenset[str]:
    return frozenset(_read_data("east_asian_places.txt"))


@functools.cache
def known_names() -> frozenset[str]:
    return frozenset(name for name in _read_data("east_asian_places.txt") + _read_data("east_asian_organizations.txt")
                     if IS_HAN.match(name[0]))


def gazetteer(text: str) -> list[Detection]:
    found = []
    for end, (word, entity, score) in _automaton().iter_long(text):
        start, end = end - len(word) + 1, end + 1
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if IS_HANGUL.match(word[0]):
            if before and IS_HANGUL.match(before):
                continue
            tail = HANGUL_RUN.match(text, end)
            if tail and tail.group(0) not in KO_PARTICLES:
                continue
        elif (IS_KANA.match(word[0]) and before and IS_KANA.match(before)) or (
                IS_KANA.match(word[-1]) and after and IS_KATAKANA.match(after)):
            continue  # "インド" inside "ウインドウ"
        if entity == "LOCATION" and text.startswith(("时间", "時間"), end):
            continue  # 北京时间: a time zone
        found.append(Detection(entity, start, end, score, RECOGNIZER))
    return found

def only(name: str, words: frozenset[str]) -> bool:
    """Whether `name` splits wholly into `words` (longest word first at each position)."""
    position = 0
    while position < len(name):
        for size in range(min(6, len(name) - position), 0, -1):
            if name[position:position + size] in words:
                position += size
                break
        else:
            return False
    return True
