"""Chinese names by form and context (part of `sanitizers.recognizers.east_asian`): organizations by suffix,
names given in quotes, person names by surname and context, transliterated foreign names, short Chinese
runs in Latin text, street addresses."""

from __future__ import annotations

import functools
import re

from sanitizers.recognizers.cjk import (
    HAN,
    HIRA,
    IS_HAN,
    KATA,
    RECOGNIZER,
    known_names,
    only,
    place_names,
    word_set,
)
from sanitizers.types import Detection

# --- Chinese: where a name runs left from its suffix or title ---------------------------------------------

# Characters that end a name on its left: particles, pronouns, prepositions, common verbs.
_STOP_CHARS = frozenset("的在是和与與给給从從到于於了对對向把被及或跟往由也都还還就我你您他她它们們这這那该該此某各每其为為"
                        "让讓将將曾已又再但而并並即去来來入进進读讀做称稱叫说說问問请請像等个個几幾位名年月过過")
# Words that introduce an organization or a place ("就读于", "毕业于", "任职"), checked where a name would start.
_STOP_WORDS = word_set(
    "就读 毕业 就职 任职 工作 加入 进入 考入 考上 考取 报考 来自 位于 成立 创办 创立 参观 访问 申请 录取 入职 实习 留学 学习 "
    "读书 供职 合作 签约 收购 担任 作为 通过 经过 包括 比如 例如 以及 还有 关于 对于 由于 根据 目前 现在 曾经 已经 之前 以前 "
    "后来 然后 同时 此外 另外 其中 感谢 欢迎 选择 推荐 联系 就讀 畢業 任職 加入 進入 來自 位於 成立 創辦 參觀 訪問 申請 錄取 "
    "實習 留學 學習 讀書 擔任 作為 透過 經過 包括 例如 以及 還有 關於 對於 由於 根據 目前 現在 曾經 已經 之前 以前 後來 然後 "
    "同時 此外 另外 其中 感謝 歡迎 選擇 推薦 聯繫 我们 我們")
_STOP_WORD_LENGTHS = sorted({len(word) for word in _STOP_WORDS})
# Pairs in which a stop character is part of a name ("协和医院", "共和国").
_NAME_PAIRS = word_set("协和 協和 共和 和平 平和 人和 亚太 同济 同濟 同仁 天使 为民 自由")
_NUMERALS = frozenset("一二两兩三四五六七八九十几幾多这這那每该該某各此本")
_MEASURES = frozenset("家所座间間")


def _name_start(text: str, end: int, limit: int, allow_latin: bool = False) -> int:
    """Where a Chinese name that ends at `end` starts: walk left over Han characters (and, if asked, Latin
    letters and digits) until punctuation, a stop character or word, or a counted noun."""
    start = end
    known = known_names()
    while start > 0 and end - start < limit:
        # A known place or organization is taken whole, stop characters and all (华为, 为 is a stop character).
        jump = next((size for size in range(6, 1, -1) if text[start - size:start] in known), 0)
        if jump and end - start + jump <= limit:
            start -= jump
            continue
        ch = text[start - 1]
        if not (IS_HAN.match(ch) or (allow_latin and ch.isascii() and ch.isalnum())):
            break
        if ch in _STOP_CHARS and text[start - 2:start] not in _NAME_PAIRS and text[start - 1:start + 1] not in _NAME_PAIRS:
            break
        if ch in _MEASURES and start >= 2 and text[start - 2] in _NUMERALS:
            break
        if any(start >= size and text[start - size:start] in _STOP_WORDS for size in _STOP_WORD_LENGTHS):
            break
        start -= 1
    # A name does not start with digits left over from the sentence ("2017年北京大学" stops at 年; "5号").
    while start < end and text[start].isdigit():
        start += 1
    return start


# --- Chinese organizations ---------------------------------------------------------------------------------

_INSTITUTIONS = ("大学", "大學", "学院", "學院", "研究院", "研究所", "研究中心", "实验室", "實驗室", "中学", "中學", "小学",
                 "小學", "高中", "幼儿园", "幼兒園", "医院", "醫院", "银行", "銀行", "协会", "協會", "学会", "學會", "基金会",
                 "基金會", "委员会", "委員會", "联合会", "聯合會", "商会", "商會", "法院", "检察院", "派出所", "博物馆", "博物館",
                 "图书馆", "圖書館", "病院", "財団", "協会")
_COMPANIES = ("股份有限公司", "有限责任公司", "有限責任公司", "有限公司", "公司", "集团", "集團", "控股", "事务所", "事務所",
              "工作室", "出版社", "电视台", "電視台", "俱乐部", "俱樂部")
# Words so often preceded by a verb ("帮助公司", "提升集团") that they need a line of business before them.
_BARE = frozenset(("公司", "集团", "集團", "控股"))
_ORG_SUFFIX = re.compile(
    "(?:" + "|".join(sorted(map(re.escape, _INSTITUTIONS + _COMPANIES), key=len, reverse=True)) + ")"
    + "(?!生|城|派|法|卡|家)"
)
# Words that describe a kind of organization rather than name one: "理工大学", "科技公司", "一家外资银行".
_GENERIC = word_set(
    "科技 技术 技術 网络 網絡 信息 資訊 互联网 互聯網 软件 軟件 电子 電子 贸易 貿易 外贸 保险 保險 房地产 地产 咨询 諮詢 物流 "
    "建筑 建築 广告 廣告 投资 投資 金融 能源 医药 醫藥 生物 传媒 傳媒 文化 教育 管理 服务 服務 工程 商业 商業 私人 私营 国有 "
    "國有 国营 上市 外资 外資 合资 跨国 跨國 大型 中型 小型 中小 初创 创业 新 大 小 老 好 总 總 分 子 母 本 贵 貴 其他 其它 别的 "
    "国外 國外 国内 國內 外国 外國 海外 本地 当地 當地 知名 著名 顶尖 頂尖 顶级 重点 重點 一流 名牌 普通 公立 私立 民办 民辦 "
    "综合 綜合 理工 师范 師範 医科 醫科 财经 財經 农业 農業 工业 工業 职业 職業 艺术 藝術 体育 體育 音乐 音樂 美术 美術 外国语 "
    "语言 語言 交通 航空 航天 海洋 石油 地质 矿业 林业 电力 邮电 政法 科学 科學 研究 开放 開放 广播 廣播 电视 電視 社区 社區 "
    "人民 中心 中央 地方 区域 區域 专科 專科 附属 附屬 第一 第二 第三 第四 第五 第六 第七 第八 第九 第十 某 该 該 此 这 那 "
    "商业 保安 物业 物業 家政 装修 裝修 餐饮 餐飲 汽车 汽車 旅游 旅遊 航运 货运 快递 律师 律師 会计 會計 设计 設計 咨询 "
    "游戏 遊戲 动漫 动画 影视 影視 电影 電影 出版 媒体 媒體 新闻 新聞 运营 營運 营销 行銷 商务 商務 实业 實業 发展 發展 "
    "集团 集團 控股 股份 有限 责任 責任 清洁 清潔 环保 環保 新能源 儿童 兒童 妇幼 婦幼 精神 口腔 眼科 中医 中醫 肿瘤 腫瘤 "
    "人工智能 区块链 大数据 云计算 一些 很多 许多 所有 全部 相关 相關 有关 有關 各大 各个 多家 部分 不同 同一 这些 那些"
)


@functools.cache
def _generic_or_place() -> frozenset[str]:
    """Words a company's name may be made of without naming it: generic words and places (美国公司)."""
    return _GENERIC | place_names()


def chinese_organizations(text: str) -> list[Detection]:
    found = []
    for match in _ORG_SUFFIX.finditer(text):
        start = _name_start(text, match.start(), 12, allow_latin=True)
        name = text[start:match.start()]
        if sum(1 for ch in name if IS_HAN.match(ch)) < 2 and not (len(name) >= 2 and name.isascii() and name.isalpha()):
            continue
        generic = _generic_or_place() if match.group(0) in _COMPANIES else _GENERIC
        if only(name, generic):
            continue
        if match.group(0) in _BARE and not any(
                only(name[k:], _GENERIC) and not only(name[:k], generic) for k in range(2, len(name))):
            continue  # 提升公司, 建议公司: a bare 公司 wants a line of business after the name (字节跳动科技公司)
        found.append(Detection("ORGANIZATION", start, match.end(), 0.7, RECOGNIZER))
    return found


# A name given in quotes after the kind of thing it names: 公众号“…”, 品牌「…」, 店铺"…".
_QUOTED_NAME = re.compile(
    r"(?:公众号|公眾號|微信号|微信號|品牌|店铺|店鋪|网店|網店|账号|帳號|小程序|频道|頻道|栏目|欄目|平台|网站|網站|工作室|团队|團隊|乐队|樂隊|"
    r"社团|社團|公司|项目|項目|产品|產品|app|APP|App)\s*[:：]?\s*[“「『\"《]([^”」』\"》\n]{2,20})[”」』\"》]"
)


def quoted_names(text: str) -> list[Detection]:
    return [Detection("ORGANIZATION", m.start(1), m.end(1), 0.6, RECOGNIZER) for m in _QUOTED_NAME.finditer(text)]


# --- Chinese person names ----------------------------------------------------------------------------------

_SURNAMES_1 = frozenset(
    "王李张張刘劉陈陳杨楊黄黃赵趙吴吳周徐孙孫马馬朱胡郭何高林罗羅郑鄭梁谢謝宋唐许許韩韓冯馮邓鄧曹彭曾肖蕭田董袁潘于蒋蔣蔡余杜"
    "叶葉程苏蘇魏吕呂丁任沈姚卢盧姜崔钟鍾谭譚陆陸汪范金石廖贾賈夏韦韋付傅方白邹鄒孟熊秦邱江尹薛闫閻段雷侯龙龍史陶黎贺賀顾顧"
    "毛郝龚龔邵万萬钱錢严嚴覃武戴莫孔向汤湯常温溫康施文牛樊葛邢安齐齊易乔喬伍庞龐颜顏倪庄莊聂聶章鲁魯岳翟殷詹申欧歐耿关關兰蘭"
    "焦俞左柳甘祝包宁寧尚符舒阮柯纪紀梅童凌毕畢单單季裴霍涂成苗谷盛曲翁冉骆駱蓝藍路游辛靳管柴蒙鲍鮑华華喻祁蒲房滕屈饶饒解牟艾尤"
    "阳陽时時穆农農司卓古吉缪繆简簡车車项項连連芦蘆麦麥褚娄婁窦竇戚岑景党宫宮费費卜冷晏席卫衛米柏宗瞿桂全佟应應臧闵閔苟邬鄔边邊"
    "卞姬师師和仇栾欒隋商刁沙荣榮巫寇桑郎甄丛叢仲虞敖巩鞏明佘池查麻苑迟遲邝鄺官封谈談匡鞠惠荆荊乐樂冀郁胥南班储儲原栗燕楚鄢劳勞谌"
)
_SURNAMES_2 = word_set(
    "欧阳 歐陽 司马 司馬 上官 诸葛 諸葛 皇甫 尉迟 尉遲 公孙 公孫 慕容 长孙 長孫 宇文 司徒 夏侯 令狐 端木 独孤 獨孤 南宫 南宮 轩辕 軒轅"
)
# Common words that begin with a surname character: never a name, whatever follows.
_COMMON = word_set(
    "高中 高级 高級 高三 高二 高一 高等 高度 高速 高效 高兴 高興 高新 高端 高管 高层 高層 黄金 黃金 马上 馬上 石油 石头 方面 方法 方式 方向 方案 方便 周末 周围 周圍 周边 周邊 周期 周年 周一 "
    "周二 周三 周四 周五 周六 周日 金融 金额 金額 金牌 白领 白領 白天 白色 林业 林業 史上 史学 程序 程度 任何 任务 任務 任课 任職 任职 于是 何时 何況 何况 万一 万元 萬元 钱包 錢包 安全 安排 "
    "安装 安裝 文学 文學 文化 文章 文件 文字 文本 江湖 田地 项目 項目 毛病 龙头 龍頭 常用 常见 常見 温度 溫度 康复 施工 牛奶 易于 齐全 庄园 章节 章節 关于 關於 关系 關係 包括 包含 宁可 符合 "
    "舒服 纪律 紀律 梅花 童年 单位 單位 季度 成功 成本 成绩 成績 成立 成员 成員 曲线 景点 党员 黨員 宫殿 费用 費用 冷静 席位 卫生 衛生 米饭 全部 全国 全國 全面 全体 全體 应该 應該 边境 師範 "
    "师范 师兄 师姐 和平 商业 商業 商品 商务 商務 沙发 荣誉 明天 明年 明白 明确 明確 官方 封面 谈判 乐观 南方 班级 班級 班主 储存 原因 原来 原來 燕麦 楚国 劳动 勞動 路上 路线 游戏 遊戲 管理 "
    "车辆 車輛 连续 連續 简单 簡單 时间 時間 时候 時候 农业 農業 司机 司機 古代 吉他 麦克 国家 齐鲁 经理 毕业 畢業 华人 華人 华为 上官 向上 向下 曾经 曾經 余额 餘額 钟表 鐘錶 汪洋 范围 範圍 "
    "夏天 夏季 秦朝 雷达 陶瓷 黎明 贺卡 顾客 顧客 顾问 顧問 万里 严格 嚴格 严重 嚴重 武器 莫名 施展 文明 葛根 庞大 颜色 顏色 章程 殷切 申请 申請 耿直 关键 關鍵 焦点 焦慮 焦虑 左右 左边 祝福 "
    "包装 尚未 舒适 纪念 紀念 凌晨 毕竟 畢竟 单独 季节 霍乱 涂料 成都 苗条 盛大 骆驼 蓝色 藍色 路由 游泳 辛苦 管道 柴油 房子 房间 房間 屈服 饶恕 解决 解決 解释 解釋 艾滋 尤其 阳光 陽光 时代 "
    "時代 司法 卓越 古典 吉祥 车上 项链 连接 景色 宫颈 费劲 冷气 席卷 卫星 宗教 全球 应用 闵行 苟且 边缘 和谐 隋朝 商量 沙漠 荣幸 桑拿 丛林 仲裁 巩固 明星 池塘 查询 查詢 麻烦 麻煩 迟到 官员 "
    "封闭 谈话 鞠躬 乐器 郁闷 储蓄 原则 劳务 陈述 陳述 黄色 黃色 周到 马路 馬路 胡说 何必 高手 郑重 谢谢 謝謝 宋朝 唐朝 许多 許多 肖像 田园 董事 蔡家 叶子 程式 魏晋 任意 钟声 陆地 陸地 范例 "
    "金子 夏日 付款 付出 方才 白话 江山 段落 龙王 史诗 顾及 严肃 武术 孔雀 向往 王者 王国 王子 王牌 万事"
)
_TITLES = re.compile(
    r"(?:先生|女士|老师|老師|同学|同學|教授|副教授|经理|經理|博士|医生|醫生|小姐|主任|律师|律師|院长|院長|校长|校長|书记|書記|局长|局長|"
    r"处长|處長|科长|科長|部长|部長|董事长|董事長|总裁|總裁|总监|總監|阿姨|叔叔|师傅|師傅|大夫|同志|老板|老闆|工程师|工程師|会计|會計|"
    r"警官|医师|醫師|护士|護士|主席|委员|委員|大哥|大姐|学长|學長|学姐|學姐|师兄|師兄|师姐|師姐|教练|教練|导演|導演|太太|夫人)"
)
_BOSS = re.compile(r"总(?=[您好的说說在是让讓和也都，,。！!？?\s]|$)|總(?=[您好的说說在是让讓和也都，,。！!？?\s]|$)")
_INTRO = re.compile(
    r"(?:我叫|我是|我姓|名叫|叫做|本人|姓名\s*[:：]?|名字\s*(?:是|叫|[:：])|联系人\s*[:：]?|聯絡人\s*[:：]?|作者\s*[:：]|收件人\s*[:：]?|"
    r"署名\s*[:：]?|申请人\s*[:：]?|申請人\s*[:：]?|负责人\s*[:：]?|負責人\s*[:：]?|患者\s*[:：]|学生\s*[:：]|學生\s*[:：])\s*"
)
_MENTION = re.compile(r"(?:给|給|跟|和|问|問|找|告诉|告訴|叫上|陪|带|帶|见|見|认识|認識)")
# What may follow a name after 给/跟/和 …: punctuation, or a word that starts the rest of the sentence.
_AFTER_MENTION = re.compile(r"$|[^" + HAN + r"]|的|说|說|一起|打电话|打電話|发|發|写|寫|聊|见面|見面|商量|讨论|討論|吃饭|吃飯|借|要|请|請|约|約")
# Characters that end a given name: particles and the verbs that follow a name.
_GIVEN_STOP = _STOP_CHARS | frozenset("今年岁歲来來去上下有没沒不会會要想也很刚剛在又现現生说說讲講是和跟给發发写寫打买買看听聽")


def _surname_at(text: str, position: int) -> int:
    """Length of the surname that starts at `position` (2 for 欧阳, 1 for 王, 0 for none)."""
    if text[position:position + 2] in _SURNAMES_2:
        return 2
    return 1 if position < len(text) and text[position] in _SURNAMES_1 else 0


def _plausible(name: str) -> bool:
    """Not a common word that happens to start with a surname (高中, 项目), and holds no place name (江苏人)."""
    known_places = place_names()
    return name[:2] not in _COMMON and name[:3] not in _COMMON and not any(
        name[i:j] in known_places for i in range(len(name)) for j in range(i + 2, len(name) + 1))


def _given(text: str, position: int) -> int:
    """Given-name characters (at most two) from `position`."""
    size = 0
    while size < 2 and position + size < len(text):
        ch = text[position + size]
        if not IS_HAN.match(ch) or ch in _GIVEN_STOP:
            break
        size += 1
    return size


def chinese_persons(text: str) -> list[Detection]:
    found = []
    # A title after the name: 张伟老师, 李明华先生, 王老师, 欧阳娜娜女士. The name runs left from the title
    # over at most four characters; it starts at the first surname, and a lone surname must stand alone.
    for match in _TITLES.finditer(text):
        end = match.start()
        chunk_start = end
        while chunk_start > 0 and end - chunk_start < 4 and IS_HAN.match(text[chunk_start - 1]) and text[chunk_start - 1] not in _STOP_CHARS:
            chunk_start -= 1
        for start in range(chunk_start, end):
            surname = _surname_at(text, start)
            if not surname or end - start - surname > 2:
                continue
            if end - start == surname and start > chunk_start:
                break  # 班主任老师: a surname character at the end of a longer word
            if _plausible(text[start:end]):
                found.append(Detection("PERSON", start, end, 0.7 if end - start > surname else 0.6, RECOGNIZER))
            break
    # 王总 (boss Wang): one surname before 总 and a boundary after it.
    for match in _BOSS.finditer(text):
        start = match.start() - 1
        if start >= 0 and text[start] in _SURNAMES_1 and (start == 0 or not IS_HAN.match(text[start - 1]) or text[start - 1] in _STOP_CHARS):
            found.append(Detection("PERSON", start, match.start(), 0.6, RECOGNIZER))
    # A self-introduction or a label: 我叫张伟, 姓名：李明华.
    for match in _INTRO.finditer(text):
        start = match.end()
        surname = _surname_at(text, start)
        given = _given(text, start + surname) if surname else 0
        name = text[start:start + surname + given]
        if given and _plausible(name):
            found.append(Detection("PERSON", start, start + surname + given, 0.7, RECOGNIZER))
    # After 给/跟/和/问 … when the sentence clearly goes on after the name: 给张伟发邮件, 跟李明一起.
    for match in _MENTION.finditer(text):
        start = match.end()
        surname = _surname_at(text, start)
        if not surname:
            continue
        for given in (2, 1):
            end = start + surname + given
            name = text[start:end]
            if (len(name) == surname + given and all(IS_HAN.match(ch) and ch not in _GIVEN_STOP for ch in name[surname:])
                    and not _TITLES.match(text, start + surname) and _AFTER_MENTION.match(text, end) and _plausible(name)):
                found.append(Detection("PERSON", start, end, 0.6, RECOGNIZER))
                break
    return found


# Characters transliterated foreign names are written with (simplified and traditional); a run of three or
# more of them holding one of the characters used almost only for transliteration is a foreign name.
_TRANSLIT = frozenset(
    "阿艾爱愛安奥奧巴拜邦贝貝本比彼毕畢波伯博布查达達戴丹德迪蒂丁杜多恩法菲费費芬佛弗福盖蓋戈格古哈海汉漢赫亨华華霍基吉加贾賈杰傑"
    "金卡凯凱坎康柯科克肯库庫拉莱萊赖賴兰蘭劳勞勒雷蕾里丽麗莉利莲蓮林琳留卢盧鲁魯路露伦倫罗羅洛玛瑪马馬迈邁麦麥曼梅蒙米密莫姆"
    "穆纳納娜奈南内內尼妮纽紐诺諾欧歐帕派潘佩皮普齐齊奇乔喬琼瓊萨薩塞桑瑟森沙莎珊舍史斯丝絲苏蘇索塔泰坦汤湯特提图圖托瓦万萬威维維"
    "温溫沃乌烏西希锡錫夏谢謝辛休雅亚亞扬揚耶伊英尤约約詹朱佐茜黛娅婭薇琪蒂尔爾芙露顿頓逊遜翰吐汀廷杰亨鲍鮑芭萝蘿贝蓓娃嘉珀璐"
)
_TRANSLIT_MARK = frozenset("尔爾丝絲斯娜莉妮琳蒂瑟茜莎黛姆弗菲詹乔喬杰傑维維娅婭薇琪芙露顿頓逊遜蕾")
_TRANSLIT_RUN = re.compile(f"[{''.join(sorted(_TRANSLIT))}]+(?:[·・•][{''.join(sorted(_TRANSLIT))}]+)*")


# Common words that start with a transliteration character: a name run does not swallow the word after it
# ("詹姆斯希望" → 詹姆斯), nor the one before it ("可爱丽丝" is not how 爱丽丝 starts).
_WORD_AFTER = word_set(
    "明天 希望 提供 内容 內容 里面 裡面 维护 維護 图片 圖片 特别 特別 多少 多么 本来 本來 安排 安全 比较 比較 加入 加上 利用 金额 西方 "
    "南方 海边 万一 温暖 谢谢 謝謝 普通 路上 克服 达到 達到 法律 古代 基本 康复 科学 科學 纳税 派对 奇怪 森林 索取 坦白 托福 威胁 希望 "
    "辛苦 休息 尤其 约会 約會 一起 英语 英文 马上 馬上 卡片 拉着 里的 亚洲 亞洲 伊始 德国 德國 美国 美國 法国 法國 英国 英國"
)
_WORD_BEFORE = word_set("可爱 可愛 亲爱 親愛 恋爱 戀愛 热爱 熱愛 喜爱 喜愛 关爱 關愛 美丽 美麗 华丽 華麗 秀丽 秀麗 壮丽 壯麗 胜利 勝利 顺利 順利")


def transliterated(text: str) -> list[Detection]:
    found = []
    for match in _TRANSLIT_RUN.finditer(text):
        start, end = match.start(), match.end()
        while end - start > 2 and text[end - 1:end + 1] in _WORD_AFTER:
            end -= 1
        while end - start > 2 and text[start - 1:start + 1] in _WORD_BEFORE:
            start += 1
        run = text[start:end]
        letters = [ch for ch in run if ch not in "·・•"]
        if len(letters) < len(run):  # 马克·吐温: the interpunct joins the parts of a foreign name
            if len(letters) >= 3:
                found.append(Detection("PERSON", start, end, 0.6, RECOGNIZER))
        elif 3 <= len(run) <= 6 and any(ch in _TRANSLIT_MARK for ch in run) and run not in place_names():
            found.append(Detection("PERSON", start, end, 0.5, RECOGNIZER))
    return found


_CJK_ISLAND = re.compile(f"(?<![{HAN}{HIRA}{KATA}])[{HAN}]{{2,4}}(?![{HAN}{HIRA}{KATA}])")


def islands(text: str) -> list[Detection]:
    """In Latin-script text, a short Chinese run that starts with a surname: 'the actor "曾舜晞"'."""
    han = len(IS_HAN.findall(text))
    letters = sum(map(str.isalpha, text))
    if not han or han > 0.2 * letters:
        return []
    found = []
    for match in _CJK_ISLAND.finditer(text):
        run = match.group(0)
        surname = _surname_at(run, 0)
        if surname and len(run) > surname and _plausible(run) and not _TITLES.search(run):
            found.append(Detection("PERSON", match.start(), match.end(), 0.5, RECOGNIZER))
    return found


# --- Chinese addresses ---------------------------------------------------------------------------------------

_CN_NUMBER = "[0-9０-９一二三四五六七八九十百零〇]+"
_CN_STREET = re.compile(
    rf"(?:路|街|道|大街|巷|弄|胡同|里)\s*{_CN_NUMBER}\s*[号號](?:\s*(?:{_CN_NUMBER}|[A-Za-z])[-\s]*(?:栋|棟|幢|号楼|號樓|楼|樓|单元|單元|层|層|室|座|号|號))*"
)


def chinese_addresses(text: str) -> list[Detection]:
    found = []
    for match in _CN_STREET.finditer(text):
        start = _name_start(text, match.start(), 24)
        if match.start() - start >= 2:
            found.append(Detection("LOCATION", start, match.end(), 0.75, RECOGNIZER))
    return found
