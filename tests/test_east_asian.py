"""`detection.east_asian` (sanitizers/recognizers/east_asian.py): names, places, organizations and addresses in
Chinese, Japanese and Korean text, capitalized Greek / Cyrillic names, and non-Latin name fields — what the
rules take, what they must leave alone, and the flag through the detector and the minimal-disclosure policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from sanitizers.detect import Detector, DetectorSettings
from sanitizers.recognizers.east_asian import find_east_asian_entities

ROOT = Path(__file__).resolve().parent.parent


def found(text: str) -> list[tuple[str, str]]:
    return [(text[d.start:d.end], d.entity) for d in find_east_asian_entities(text)]


@pytest.mark.parametrize(("text", "expected"), [
    # Chinese organizations by suffix: the name stops at punctuation, particles and introducing verbs.
    ("中译英：香港理工大学首席研究员、广东科技学院客座教授",
     [("香港理工大学", "ORGANIZATION"), ("广东科技学院", "ORGANIZATION")]),
    ("在哈尔滨工程大学就读本科期间，我在杜伦大学完成了硕士学位。",
     [("哈尔滨工程大学", "ORGANIZATION"), ("杜伦大学", "ORGANIZATION")]),
    ("他是中国科学院自动化研究所的研究员，也是清华大学的兼职教授。",
     [("中国科学院自动化研究所", "ORGANIZATION"), ("清华大学", "ORGANIZATION")]),
    ("我的高中同学现在在华为技术有限公司上班。", [("华为技术有限公司", "ORGANIZATION")]),
    ("我在北京协和医院看过病。", [("北京协和医院", "ORGANIZATION")]),
    ("在我运营的微信公众号“城南旧事小助手”中发布文章", [("城南旧事小助手", "ORGANIZATION")]),
    ("这是我在阿里巴巴总结的标题", [("阿里巴巴", "ORGANIZATION")]),
    # Chinese person names in context.
    ("我叫张伟，今年28岁。", [("张伟", "PERSON")]),
    ("请帮我给王芳老师写一封感谢信。", [("王芳", "PERSON")]),
    ("明天下午我要和陈静一起去见刘总。", [("陈静", "PERSON"), ("刘总", "PERSON")]),
    ("收件人：欧阳娜娜", [("欧阳娜娜", "PERSON")]),
    ("早安，愛麗絲，我很早就在菲爾馬參加了會議。", [("愛麗絲", "PERSON"), ("菲爾馬", "PERSON")]),
    ("我和马克·吐温都喜欢写作。", [("马克·吐温", "PERSON")]),
    ("我的朋友詹姆斯明天来。", [("詹姆斯", "PERSON")]),
    ('Do you think I can marry the Chinese actor "曾舜晞"?', [("曾舜晞", "PERSON")]),
    # Places and addresses.
    ("小明从青岛到北京上班", [("青岛", "LOCATION"), ("北京", "LOCATION")]),
    ("住址：北京市海淀区中关村大街27号3号楼502室。", [("北京市海淀区中关村大街27号3号楼502室", "LOCATION")]),
    # Japanese.
    ("田中さん、明日の会議は何時からですか？", [("田中", "PERSON")]),
    ("私は鈴木一郎です。東京都千代田区丸の内1-9-1に住んでいます。",
     [("鈴木一郎", "PERSON"), ("東京都千代田区丸の内1-9-1", "LOCATION")]),
    ("トヨタ自動車株式会社の本社は愛知県にあります。", [("トヨタ自動車株式会社", "ORGANIZATION"), ("愛知県", "LOCATION")]),
    # Korean.
    ("김철수 대표님께서 회의에 참석하십니다.", [("김철수", "PERSON")]),
    ("최민수 씨가 전화했어요.", [("최민수", "PERSON")]),
    ("(주)모두의연구소 | 대표 김승일 | 대전 중구 중앙로 119 대전테크노파크 디스테이션 12층",
     [("(주)모두의연구소", "ORGANIZATION"), ("김승일", "PERSON"),
      ("대전 중구 중앙로 119 대전테크노파크 디스테이션 12층", "LOCATION")]),
    ("서울 강남구 강남대로 324 (역삼디오슈페리움) 2층", [("서울 강남구 강남대로 324 (역삼디오슈페리움) 2층", "LOCATION")]),
    ("2024-03-12 | 이영빈 최근 공개된 모델", [("이영빈", "PERSON")]),
    ("삼성전자 주식회사와 (주)카카오가 협력합니다.", [("삼성전자 주식회사", "ORGANIZATION"), ("(주)카카오", "ORGANIZATION")]),
    ("이번 주에 국민은행에 가서 계좌를 열었다.", [("국민은행", "ORGANIZATION")]),
    ("저는 부산에서 태어나서 미국에서 일하고 있어요.", [("부산", "LOCATION"), ("미국", "LOCATION")]),
    # Other scripts: capitalized Greek / Cyrillic words inside a sentence, non-Latin name fields.
    ("Πες μου για τον πολιτικο Κυριακο Βελοπουλο", [("Κυριακο Βελοπουλο", "PROPER_NOUN")]),
    ("Я работаю в компании Яндекс с Иваном Петровым.", [("Яндекс", "PROPER_NOUN"), ("Иваном Петровым", "PROPER_NOUN")]),
    ('{"KhmerName":"រិទ្ធ មករា","Address":"ភូមិឈូងត្រដក់ ឃុំរកា","Nationality":"ខ្មែរ"}',
     [("រិទ្ធ មករា", "PERSON"), ("ភូមិឈូងត្រដក់ ឃុំរកា", "LOCATION"), ("ខ្មែរ", "NRP")]),
])
def test_finds(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    # Generic organizations: a verb, a counted noun, or only descriptive words before the suffix.
    "为了提升公司管理者的领导力，你建议公司使用哪种理论？",
    "我想开一家咨询公司，需要注意什么？",
    "我在一所大学读书，大学生活很充实。",
    "你觉得我应该考研还是找工作？我是一名普通的大学生。",
    "那个学院派的画家很有名。",
    "高中老师和大学老师有什么区别？",
    "项目经理和产品经理哪个更好？",
    "我们公司的项目经理说这个方案不行。",
    "史上最强的团队是哪个？",
    "这个方法很高效，成本也低。",
    "昨天我跟安娜去看了电影。",  # two characters of a foreign name are too few to tell from a word
    "上周总结会上大家说了什么？",
    "我们约在北京时间下午三点开会。",  # a time zone, not a place the user is at
    # Japanese honorifics on common nouns; katakana words that contain a place name.
    "お客様からのクレームにどう対応すればいいですか？",
    "皆様、こんにちは。担当者様にお伝えください。",
    "先生、質問があります。担任の先生はとても優しいです。",
    "ウインドウを閉じてください。",
    # Korean: titles after common words, words that end in 구 before a number, words that contain a city.
    "이번 연구 결과로 10명이 참여했습니다.",
    "정부 대표와 기업 대표가 만났습니다.",
    "우리 선생님은 정말 친절하세요.",
    "고객님께 감사드립니다. 장모님과 이모님이 오셨어요.",
    "고양이가 너무 귀여워요.",
    "연구소에서 일하는 친구가 있어요. 종합병원에 가야 하나요?",
    # Greek / Cyrillic words capitalized by position (sentence start, code comments, markup, lists).
    "// Получение параметров",
    "Лексику, Перефразирование и переформулирование",
    "<br> Если вы не отправляли запрос",
    # English prompts with a Chinese word that is not a name; a translation request in Arabic.
    'How do I say "thank you" in Chinese? Is it 谢谢?',
    "What does 你好 mean?",
    "Translate 'مرحبا بالعالم' to English please.",
    '{"FileName": "报告.docx"}',
    "Plain English text with no other script: Maria Keller lives in Berlin.",
])
def test_leaves_alone(text: str) -> None:
    assert found(text) == []


def test_detector_flag_entities_and_allow_list() -> None:
    text = "我叫张伟，在北京的清华大学读书。"
    off = Detector(DetectorSettings(ner="none", gazetteers=False, cache_size=0))
    assert not [d for d in off.analyze(text) if d.recognizer == "EastAsianRecognizer"]
    on = Detector(DetectorSettings(ner="none", gazetteers=False, cache_size=0, east_asian=True))
    spans = {(text[d.start:d.end], d.entity) for d in on.analyze(text) if d.recognizer == "EastAsianRecognizer"}
    assert spans == {("张伟", "PERSON"), ("北京", "LOCATION"), ("清华大学", "ORGANIZATION")}
    only_people = Detector(DetectorSettings(ner="none", gazetteers=False, cache_size=0, east_asian=True,
                                            entities=("PERSON",)))
    assert {text[d.start:d.end] for d in only_people.analyze(text)} == {"张伟"}
    allowed = Detector(DetectorSettings(ner="none", gazetteers=False, cache_size=0, east_asian=True,
                                        allow_list=("清华大学",)))
    assert "清华大学" not in {text[d.start:d.end] for d in allowed.analyze(text)}


def test_minimal_disclosure_scan_removes_cjk_names() -> None:
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.runtime import Runtime
    from privacy_proxy.scan import scan_item

    policy = load_policy(ROOT / "policies" / "minimal-disclosure.yaml")
    assert policy.policy.detection.east_asian is True
    runtime = Runtime.build(policy, b"k" * 32)
    text = "中译英：我叫李明华，在哈尔滨工程大学读本科，之后去了香港工作。请翻译成英文。"
    sent = scan_item({"id": 1, "text": text}, runtime)["outbound"][0]
    for value in ("李明华", "哈尔滨工程大学", "香港"):
        assert value not in sent
    assert sent.endswith("请翻译成英文。")
