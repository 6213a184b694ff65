"""Names in Chinese, Japanese and Korean text → PERSON / LOCATION / ORGANIZATION (opt-in: `detection.east_asian`).

The pattern tier and the built-in NER read English; a prompt in Chinese, Japanese or Korean passes them
with every name intact. This recognizer finds the names those languages mark by form or context:

- places: a gazetteer of countries, Chinese provinces and cities, Taiwan / Hong Kong / Macau, Japanese
  prefectures and cities, Korean provinces and cities and the world cities prompts name most, in their
  CJK spellings (data/east_asian_places.txt), plus a short list of big companies named bare
  (data/east_asian_organizations.txt). Kana and Hangul names must stand as words;
- Chinese organizations by suffix (大学, 学院, 有限公司, 集团, 银行, 医院, 研究所, 协会, 事务所 …): the name
  runs left from the suffix until punctuation, a function word (的 在 是 和 与 给 从 到 …), a verb that
  introduces an organization (就读 毕业 任职 加入 …) or a counted noun (一家, 两所); a name made only of
  generic words (理工大学, 科技公司, 美国公司) is not a name;
- Chinese person names: a common surname (single or double) and one or two given characters, before a
  title (先生 女士 老师 经理 教授 医生 …), after a self-introduction or label (我叫, 我是, 姓名：) or after
  给/跟/和/问/找/告诉 when a clear boundary follows; transliterated foreign names (runs of the characters
  transliteration uses, 爱丽丝, 菲爾馬, joined by ·); and, in Latin-script text, a short Chinese run that
  starts with a surname ("the actor 曾舜晞");
- Chinese street addresses: a road (路 街 大道 巷 弄 胡同) with a house number (号) and its building parts;
- Japanese: names before an honorific (さん 様 先生 氏 …) or in 「私は…です」/「…と申します」, companies
  with 株式会社 / 有限会社 / (株), addresses from a prefecture to the block number;
- Korean: names (surname + one or two syllables) with a title (님 씨 대표 교수 …) or a label (대표, 성명:,
  작성자:), companies ((주)X, 주식회사 X, X연구소, X대학교, X병원, X은행 …), road addresses (시/도 + 구/군 +
  로/길 + number, with the building and 층/호 that follow).

Two rules reach other scripts no detector reads: capitalized Greek and Cyrillic words inside a sentence
(those languages capitalize names, not nouns) → PROPER_NOUN, and the value of a name / address /
nationality field in JSON or markup ("KhmerName":"…") when it is written in a script other than Latin.

Rules, not a list of names: they trade some precision for recall (a generic phrase before 公司 is taken
for a name now and then), which is why the recognizer is opt-in (policies/minimal-disclosure.yaml).
"""

from __future__ import annotations

import re

from sanitizers.recognizers.chinese import (
    chinese_addresses,
    chinese_organizations,
    chinese_persons,
    islands,
    quoted_names,
    transliterated,
)
from sanitizers.recognizers.cjk import (
    HAN,
    HANGUL,
    HIRA,
    IS_KANA,
    KATA,
    RECOGNIZER,
    gazetteer,
)
from sanitizers.recognizers.japanese_korean import japanese, korean
from sanitizers.types import Detection

__all__ = ["RECOGNIZER", "find_east_asian_entities"]


# --- other scripts ---------------------------------------------------------------------------------------------

# Greek and Cyrillic capitalize names, not nouns: a capitalized word inside a sentence is a name.
_CASED_WORD = "[\u0386\u0388-\u038f\u0391-\u03a9\u0400-\u042f][\u0370-\u03ff\u0400-\u04ff\u1f00-\u1fff'’-]+"
_CASED_RUN = re.compile(rf"(?<![\w@#/]){_CASED_WORD}(?:[ \t]+{_CASED_WORD})*(?![\w@])")
_PREVIOUS_WORD = re.compile(r"(?:^|\s)([\u0370-\u03ff\u1f00-\u1fff\u0400-\u04ff]+)[ \t]+$")
_RU_COMPANY = re.compile(r"(?<![\w])(?:ООО|ОАО|ЗАО|ПАО|АО|ИП)\s+(?:[«\"„][^»\"“\n]{1,40}[»\"“]|(?:[А-ЯЁ][\wА-Яа-яЁё-]*\s?){1,3})")


def _cased_scripts(text: str) -> list[Detection]:
    """A run of capitalized Greek / Cyrillic words right after a lower-case word of the same script (inside a
    sentence: "για τον πολιτικο Κυριακο Βελοπουλο"); after punctuation, markup or code the capital may be
    positional ("// Обработка", "<br> Если", "лексику, Изменение"), so those are left alone. Company forms
    (ООО «Ромашка») are taken wherever they stand."""
    found = []
    for match in _CASED_RUN.finditer(text):
        previous = _PREVIOUS_WORD.search(text, max(0, match.start() - 40), match.start())
        if previous is None or not previous.group(1).islower():
            continue
        if len(match.group(0)) > 2:
            found.append(Detection("PROPER_NOUN", match.start(), match.end(), 0.5, "CasedScriptRecognizer"))
    for match in _RU_COMPANY.finditer(text):
        found.append(Detection("ORGANIZATION", match.start(), match.end(), 0.7, "CasedScriptRecognizer"))
    return found


# The value of a name / address / nationality field in JSON or markup, in a script the detectors cannot read.
_FIELD = re.compile(
    r"[\"']?([A-Za-z_]*(?:name|Name|NAME|address|Address|ADDRESS|addr|Addr|street|Street|city|City|village|Village|"
    r"province|Province|district|District|nationality|Nationality|birthplace|Birthplace|company|Company|employer|Employer)"
    r"[A-Za-z_]*)[\"']?\s*[:=]\s*[\"']([^\"'\n]{1,80})[\"']"
)
_NOT_A_NAME_KEY = re.compile(r"(?i)file|path|class|type|tag|font|key")
_LATIN_OR_COMMON = re.compile(r"^[\x00-\u024f\u2000-\u206f\s]*$")


def _field_values(text: str) -> list[Detection]:
    found = []
    for match in _FIELD.finditer(text):
        value = match.group(2)
        if _LATIN_OR_COMMON.match(value) or not any(ch.isalpha() for ch in value) or _NOT_A_NAME_KEY.search(match.group(1)):
            continue
        key = match.group(1).lower()
        entity = ("NRP" if "national" in key else "LOCATION" if any(k in key for k in ("addr", "street", "city", "village",
                  "province", "district", "birthplace")) else "ORGANIZATION" if any(k in key for k in ("company", "employer"))
                  else "PERSON")
        found.append(Detection(entity, match.start(2), match.end(2), 0.6, RECOGNIZER))
    return found


# --- all together -------------------------------------------------------------------------------------------------

_ANY_TARGET = re.compile(f"[{HAN}{HIRA}{KATA}{HANGUL}\u0370-\u03ff\u0400-\u04ff]")
_NON_LATIN = re.compile(r"[^\x00-\u024f]")
_CJK = re.compile(f"[{HAN}{HIRA}{KATA}{HANGUL}]")


def find_east_asian_entities(text: str) -> list[Detection]:
    """Names, places, organizations and addresses in Chinese, Japanese and Korean text (and capitalized
    Greek / Cyrillic names, and non-Latin name fields); non-overlapping, longest first."""
    if not _NON_LATIN.search(text):
        return []
    candidates: list[Detection] = _field_values(text)
    if _ANY_TARGET.search(text):
        candidates += _cased_scripts(text)
        if _CJK.search(text):
            in_japanese = japanese(text) if IS_KANA.search(text) else []
            candidates += (korean(text) + in_japanese + chinese_addresses(text) + chinese_organizations(text)
                           + quoted_names(text) + chinese_persons(text) + gazetteer(text) + transliterated(text)
                           + islands(text))
    chosen: list[Detection] = []
    taken: list[tuple[int, int]] = []
    trimmed = []
    for detection in candidates:
        value = text[detection.start:detection.end]
        start, end = detection.start + len(value) - len(value.lstrip()), detection.end - len(value) + len(value.rstrip())
        trimmed.append(Detection(detection.entity, start, end, detection.score, detection.recognizer))
    for detection in sorted(trimmed, key=lambda d: (-(d.end - d.start), -d.score, d.start)):
        if detection.end <= detection.start:
            continue
        if any(detection.start < end and start < detection.end for start, end in taken):
            continue
        chosen.append(detection)
        taken.append((detection.start, detection.end))
    return sorted(chosen, key=lambda d: d.start)
