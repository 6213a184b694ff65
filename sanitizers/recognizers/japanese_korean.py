"""Japanese and Korean names by form and context (part of `sanitizers.recognizers.east_asian`): names with
an honorific, title or label, companies, street addresses."""

from __future__ import annotations

import re

from sanitizers.recognizers.cjk import (
    HAN,
    HANGUL,
    HIRA,
    KATA,
    RECOGNIZER,
    only,
    place_names,
    word_set,
)
from sanitizers.types import Detection

# --- Japanese --------------------------------------------------------------------------------------------------

_JA_HONORIFIC = re.compile(
    f"(?<![{HAN}])([{HAN}]{{2,4}})(?:さん|様|さま|先生|氏|殿|君|くん|ちゃん|教授)"
    f"|(?<![{KATA}])([{KATA}]{{2,12}})(?:さん|様|さま|先生|氏|くん|ちゃん)"
)
_JA_INTRO = re.compile(f"(?:私は|わたしは|僕は|俺は)([{HAN}]{{2,4}})(?:です|と申します|といいます)|(?<![{HAN}])([{HAN}]{{2,4}})(?:と申します|と言います|といいます)")
# Nouns that take さん/様 without being names: お客様, 担当者様, 店員さん.
_JA_COMMON = word_set(
    "客 お客 皆 神 王 奥 担当 担当者 関係者 各位 先生 医者 店員 大工 社長 部長 課長 運転手 看護師 駅員 警察 弁護士 患者 生徒 学生 先輩 "
    "後輩 友達 彼女 彼氏 子供 主人 旦那 家族 皆様 皆さん 会員 利用者 読者 視聴者 参加者 応募者 購入者 保護者 管理人 大家 隣人 女性 男性 "
    "営業 店長 本人 相手 園長 校長 院長 理事長 会長 母親 父親 両親 息子 娘 お母 お父 奥様 皆様方 客様 乗客 受講者 受験生 新人 上司 部下 "
    "同僚 社員 職員 教員 医師 歯医者 薬剤師 看護婦 先方 貴社 御社"
)
_JA_KATA_COMMON = word_set("ママ パパ ヤクザ オーナー スタッフ ユーザー ファン メンバー ゲスト マスター ドクター")
_JA_COMPANY = re.compile(
    f"(?:株式会社|有限会社|合同会社|[(（]株[)）]|㈱|[(（]有[)）]|㈲)\\s*([{HAN}{KATA}A-Za-z0-9&＆・ー]{{1,20}})"
    f"|([{HAN}{KATA}A-Za-z0-9&＆・ー]{{1,20}})\\s*(?:株式会社|有限会社|合同会社|[(（]株[)）]|㈱)"
)
_JA_PREFECTURE = "(?:東京都|北海道|(?:京都|大阪)府|[" + HAN + "]{2,3}県)"
_JA_ADDRESS = re.compile(
    rf"(?:〒?\s*\d{{3}}[-－]\d{{4}}\s*)?{_JA_PREFECTURE}[{HAN}{HIRA}{KATA}ヶケ]{{1,20}}?"
    rf"[0-9０-９]+(?:丁目|番地?|号|[-－ー‐])(?:[0-9０-９]+(?:丁目|番地?|号|[-－ー‐])?)*"
)


def japanese(text: str) -> list[Detection]:
    found = []
    for match in _JA_HONORIFIC.finditer(text):
        group = 1 if match.group(1) else 2
        name = match.group(group)
        if name in _JA_COMMON or name in _JA_KATA_COMMON or name in place_names():
            continue
        found.append(Detection("PERSON", match.start(group), match.end(group), 0.65, RECOGNIZER))
    for match in _JA_INTRO.finditer(text):
        group = 1 if match.group(1) else 2
        if match.group(group) not in _JA_COMMON:
            found.append(Detection("PERSON", match.start(group), match.end(group), 0.7, RECOGNIZER))
    for match in _JA_COMPANY.finditer(text):
        found.append(Detection("ORGANIZATION", match.start(), match.end(), 0.75, RECOGNIZER))
    for match in _JA_ADDRESS.finditer(text):
        found.append(Detection("LOCATION", match.start(), match.end(), 0.75, RECOGNIZER))
    return found


# --- Korean ------------------------------------------------------------------------------------------------------

_KO_SURNAME_TEXT = ("남궁 황보 제갈 선우 독고 사공 서문 김 이 박 최 정 강 조 윤 장 임 한 오 서 신 권 황 안 송 류 유 전 홍 고 문 양 손 배 "
                "백 허 남 심 노 하 곽 성 차 주 우 구 민 진 나 지 엄 채 원 천 방 공 현 함 변 염 여 추 도 소 석 선 설 마 길 연 위 표 명 "
                "기 반 왕 금 옥 육 인 맹 제 모 탁 국 어 은 편 용 예 경 봉 사 부 가 복 태 목 형 피 두 감 음 빈 동 온 호 범 좌 팽 승 간 상 갈")
_KO_SURNAMES = sorted(_KO_SURNAME_TEXT.split(), key=len, reverse=True)
_KO_SURNAME = "(?:" + "|".join(_KO_SURNAMES) + ")"
_KO_TITLE = ("대표이사|대표님|대표|부대표|대리님|대리|과장님|과장|부장님|부장|차장님|차장|팀장님|팀장|실장님|실장|이사님|상무님|상무|전무님|전무|"
             "사장님|사장|회장님|회장|교수님|교수|선생님|박사님|박사|기자|의원님|의원|작가님|작가|감독님|감독|변호사님|변호사|원장님|원장|"
             "소장님|소장|매니저님|매니저|주임님|주임|연구원님|연구원|사원님|학생|총장님|총장|님|씨")
# Common words of three syllables that start with a surname and may stand before a title: 이번, 정부의, 우리의.
_KO_COMMON = word_set(
    "이번 이런 이후 이전 이상 이하 이미 이제 이름 이유 이용 이야 이사 이모 정부 정도 정말 정보 정리 정책 정식 조직 조금 조사 조교 한국 한번 한편 "
    "전체 전문 전직 전국 전임 고객 고모 고문 문제 문의 우리 주요 주식 주제 주인 기업 기존 기술 기본 지금 지난 지역 지원 진행 사람 사용 사실 사업 "
    "방법 방식 공부 공유 공개 공동 성공 성장 성능 최근 최고 최대 최초 최종 강의 강조 강사 안전 안녕 신규 신청 신부 신임 권한 장점 장소 장모 장인 "
    "임원 유지 유명 유형 유저 홍보 오늘 오후 오전 서비스 서로 선택 설명 연구 연결 여러 노력 하나 하지 배우 백업 허용 남자 남편 심사 차이 차량 "
    "차장 추가 추천 도움 도입 소개 석사 마지막 명령 반드시 금액 인공 인간 제공 제품 제안 모두 모델 국내 국가 어떤 은행 용도 예정 예시 경우 경험 "
    "봉사 부분 부모 가장 가능 태도 목표 목적 형태 감사 음성 동안 동시 온라인 호텔 범위 승인 간단 상황 상태 원래 원장 위원 위해 민간 구성 구체 "
    "나의 지도 채용 천재 현재 현장 함께 변경 염려 추진 도서 소속 선배 설립 마음 길이 연세 위대 표현 명예 기존 반장 왕자 금융 육성 인사 맹세 "
    "제가 모든 탁월 국회 어린 은퇴 편집 용어 예비 경영 복지 태양 목사 형님 피해 두번 감독 음악 빈자 동료 온갖 호주 범죄 좌장 팽창 승리 간호 상담"
)
_KO_PARTICLE_END = frozenset("의를을에로와과는도만")
_KO_NAME_BEFORE = re.compile(
    rf"(?<![{HANGUL}])({_KO_SURNAME}[{HANGUL}]{{1,2}})\s?(?:{_KO_TITLE})(?=께서|께|에게|이|가|은|는|을|를|의|과|와|도|만|이나|[^{HANGUL}]|$)"
)
_KO_LABEL = re.compile(
    rf"(?:대표|대표이사|대표자|작성자|글쓴이|지은이|저자|기자|이름|성명|담당자|담당|발표자|강사|교수|연락처|문의|예금주|수신|발신)"
    rf"\s*[:：|]?\s*({_KO_SURNAME}[{HANGUL}]{{2}})(?![{HANGUL}])"
)
_KO_BYLINE = re.compile(
    rf"\d{{4}}[-./]\d{{1,2}}[-./]\d{{1,2}}\.?\s*[|·/]\s*({_KO_SURNAME}[{HANGUL}]{{2}})(?![{HANGUL}])"
    rf"|(?<![{HANGUL}])({_KO_SURNAME}[{HANGUL}]{{2}})\s*[|·/]\s*\d{{4}}[-./]\d{{1,2}}[-./]\d{{1,2}}"
)
_KO_WORD = f"[{HANGUL}A-Za-z0-9&]"
_KO_COMPANY = re.compile(
    rf"(?:\(주\)|㈜|\(유\)|주식회사|유한회사)\s?{_KO_WORD}+?(?=(?:이|가|은|는|을|를|의|와|과|에서|에게|에|으로|로|도|만)?(?!{_KO_WORD}))|(?<![{HANGUL}A-Za-z0-9&]){_KO_WORD}+(?:\(주\)|㈜|\s?주식회사)"
)
_KO_ORG_SUFFIX = ("연구소|대학교|대학원|병원|은행|재단|협회|학회|전자|건설|학원|고등학교|중학교|초등학교|법률사무소|회계법인|"
                  "법무법인|공단|스튜디오|엔터테인먼트|컴퍼니")
_KO_ORG = re.compile(rf"(?<![{HANGUL}A-Za-z0-9])({_KO_WORD}{{2,12}}?)({_KO_ORG_SUFFIX})(?=[{HANGUL}]{{0,3}}(?![{HANGUL}]))")
_KO_ORG_GENERIC = word_set(
    "종합 대학 동물 치과 한방 요양 정신 개인 지역 시중 중앙 인터넷 저축 대형 중소 국내 해외 외국 일반 전문 민간 공공 국립 사립 시립 도립 "
    "우리 이 그 저 각 모든 여러 다른 해당 관련 부설 산하 소속 대학 기업 부속 부설 유명 주요 작은 큰 새 좋은 최고 세계 글로벌 디자인 "
    "연구 기술 보험 증권 건설 미디어 교육 의료 금융 투자 자산 영어 수학 입시 보습 음악 미술 태권도 피아노"
)
_KO_PROVINCE = ("(?:서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|경남|제주|충청북|충청남|전라북|전라남|"
                "경상북|경상남)(?:특별시|광역시|특별자치시|특별자치도|도|시)?")
_KO_ADDRESS = re.compile(
    rf"(?:{_KO_PROVINCE}\s+)?(?:[{HANGUL}]{{1,4}}시\s+)?[{HANGUL}]{{1,4}}[구군]\s+(?:[{HANGUL}]{{1,4}}[읍면]\s+)?"
    rf"(?:[{HANGUL}0-9]{{1,12}}(?:로|길)(?:\s?\d+(?:번)?길)?\s+\d+(?:-\d+)?|[{HANGUL}0-9]{{1,6}}동\s+\d+(?:-\d+)?(?:번지)?)"
    rf"(?![\d{HANGUL}%.])"
    rf"(?:,?\s*(?:\(?[{HANGUL}A-Za-z0-9·]+\)?\s+){{0,3}}(?:지하\s?)?\d+(?:층|호)(?:\s?\d+호)?)?"
)

# Words that end in 구/군 without being a district: 연구 결과로 10 is not an address.
_KO_NOT_DISTRICT = word_set("연구 요구 추구 도구 가구 인구 친구 입구 출구 창구 탐구 기구 용구 문구 장군 아군 해군 공군 육군 대군 적군 군")
_KO_PROVINCE_FIRST = re.compile(_KO_PROVINCE)
_KO_DISTRICT_WORD = re.compile(f"(?:{_KO_PROVINCE}\\s+)?([{HANGUL}]+)")


def korean(text: str) -> list[Detection]:
    found = []
    for match in _KO_NAME_BEFORE.finditer(text):
        name = match.group(1)
        # "고객님", "장모님", "정부 대표": a two-syllable word before a title is rarely a name.
        if len(name) < 3 or name[:2] in _KO_COMMON or name[-1] in _KO_PARTICLE_END:
            continue
        found.append(Detection("PERSON", match.start(1), match.end(1), 0.65, RECOGNIZER))
    for pattern in (_KO_LABEL, _KO_BYLINE):
        for match in pattern.finditer(text):
            group = 1 if match.group(1) else 2
            name = match.group(group)
            if name[:2] in _KO_COMMON or name[-1] in _KO_PARTICLE_END:
                continue
            found.append(Detection("PERSON", match.start(group), match.end(group), 0.65, RECOGNIZER))
    for match in _KO_COMPANY.finditer(text):
        found.append(Detection("ORGANIZATION", match.start(), match.end(), 0.75, RECOGNIZER))
    for match in _KO_ORG.finditer(text):
        prefix = match.group(1)
        if prefix in _KO_ORG_GENERIC or only(prefix, _KO_ORG_GENERIC):
            continue
        found.append(Detection("ORGANIZATION", match.start(1), match.end(2), 0.7, RECOGNIZER))
    for match in _KO_ADDRESS.finditer(text):
        district = _KO_DISTRICT_WORD.match(match.group(0))
        if district is not None and district.group(1) in _KO_NOT_DISTRICT and not _KO_PROVINCE_FIRST.match(match.group(0)):
            continue
        found.append(Detection("LOCATION", match.start(), match.end(), 0.75, RECOGNIZER))
    return found
