"""Split a requirement (Chinese or English) into atomic, testable requirement points R1..Rn.

Rules, not a model: list items, lines and sentences become candidates; a candidate is kept when it
states a behaviour or a constraint (a modal or limit word, a behaviour verb, or a number), and
headings, document prose and repeats are dropped.
"""

from __future__ import annotations

import re
from typing import Literal

from agents.testcases.schemas import RequirementPoint

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")

_BULLET = re.compile(
    r"^\s*(?:"
    r"[-*+•·●○▪◦■□►▶✓✔]\s*(?:\[[ xX]\]\s*)?"
    r"|\d+(?:\.\d+)*[.)）、．](?!\d)"
    r"|[a-zA-Z][.)](?=\s)"
    r"|[(（]\s*(?:\d+|[a-zA-Z]|[一二三四五六七八九十]+)\s*[)）]"
    r"|[一二三四五六七八九十]+[、.．]"
    r"|第[一二三四五六七八九十\d]+[条点项步][:：、.]?"
    r"|(?:AC|REQ|US|FR|NFR|R)[-_ ]?\d+[:：.)、]"
    r")\s*"
)
_LABEL = re.compile(r"^(?:注|备注|说明|note|nb)\s*[:：]\s*", re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
# Where a sentence ends: CJK and ASCII terminators, and a '.' only when a space or the end follows (3.5 stays).
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=\.)(?=\s|$)")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|min|max|no|mr|mrs|dr|fig)\.)$", re.IGNORECASE)
_TRAILING = re.compile(r"[\s。；;，,.!！?？、:：]+$")
_NORMALISE = re.compile(r"[\W_]+")

_CONSTRAINT_ZH = (
    "必须|应该|应当|应|须|需要|需(?!求)|不能|不得|不可|只能|仅|至少|最多|不超过|不少于|不低于|不高于|之间|以内|以上|以下|"
    "支持|可以|可|允许|禁止|不允许|必填|限制|上限|下限"
)
_BEHAVIOUR_ZH = (
    "后|时|当|若|如果|则|跳转|显示|提示|返回|锁定|解锁|发送|生成|保存|删除|修改|校验|验证|自动|成功|失败|展示|计算|"
    "扣|退款|通知|记录|为|包含|满足|有效|失效|过期|超过|达到|收到|进入|关闭|打开|登录|注册|下单|支付"
)
_KEYWORD_ZH = re.compile(f"(?:{_CONSTRAINT_ZH}|{_BEHAVIOUR_ZH})")
_MODAL = re.compile(
    rf"(?:{_CONSTRAINT_ZH}|规则|要求)|\b(?:must|should|shall|can|cannot|only|may|required|rules?)\b", re.IGNORECASE
)
_KEYWORD_EN = re.compile(
    r"\b(?:must|should|shall|can|cannot|can't|may|will|won't|only|at least|at most|between|up to|within|"
    r"no more than|no less than|required|requires?|allow\w*|prevent\w*|reject\w*|accept\w*|display\w*|shows?|shown|"
    r"returns?|redirect\w*|lock\w*|unlock\w*|sends?|sent|receiv\w*|block\w*|validat\w*|creat\w*|saves?|saved|"
    r"delet\w*|updat\w*|calculat\w*|appl(?:y|ies|ied)|charg\w*|notif\w*|expir\w*|support\w*|enabl\w*|disabl\w*|"
    r"when|if|after|before|once|unless|never|always)\b",
    re.IGNORECASE,
)
_FLUFF = re.compile(
    r"^(?:本文档|本文|本需求|本章|本节|以下是|如下所示|详见|参见|待定|TBD|TODO|"
    r"this (?:document|section|page|chapter|spec)|the following|see (?:also|below|above)|thanks?\b)",
    re.IGNORECASE,
)
_HEADING_WORDS = re.compile(
    r"^(?:背景|概述|简介|目的|范围|需求|需求描述|功能描述|功能需求|验收标准|业务规则|规则|说明|备注|附录|"
    r"overview|background|introduction|purpose|scope|requirements?|description|acceptance criteria|"
    r"business rules|rules|notes?|summary|appendix)$",
    re.IGNORECASE,
)
_HEADING_SUFFIX = re.compile(
    r"(?:需求|功能|模块|说明|概述|流程|设计|文档|specification|requirements?|feature|module|overview)$", re.IGNORECASE
)
# Sections and sentences that describe why, not what: no test can check a goal or a target metric.
_CONTEXT_HEADING = re.compile(
    r"^(?:项目)?(?:背景|目标|业务目标|背景与目标|背景和目标|概述|简介|目的|指标|成功指标|现状|"
    r"background|goals?|objectives?|overview|introduction|purpose|context|metrics|success metrics|motivation)"
    r"\s*(?:[:：]\s*(?P<rest>.*))?$",
    re.IGNORECASE,
)
_SECTION = re.compile(r"^\s*(?:#|[一二三四五六七八九十]+[、.．]|\d+(?:\.\d+)*\s)")
_METRIC = re.compile(
    r"成功率|转化率|满意度|投诉|留存|P9\d|响应时间|耗时|QPS|TPS|可用性|SLA|提升到|提升至|提高到|降低到|降低至|降至|"
    r"success rate|conversion|complaints?|satisfaction|support tickets|latency|\bp9\d\b|response time|uptime|"
    r"retention|throughput",
    re.IGNORECASE,
)
_TRAILING_MODAL = re.compile(r"\b(?:must|should|shall|can|cannot|may|will|is|are|be)$", re.IGNORECASE)
_LEAD_IN_SUFFIX = re.compile(r"(?:如下|以下|as follows|the following)\s*$", re.IGNORECASE)


def detect_language(text: str) -> Literal["zh", "en"]:
    """``zh`` when CJK characters carry the text (an ideograph counts as half a word), else ``en``."""
    cjk = len(_CJK.findall(text))
    words = len(_LATIN_WORD.findall(text))
    if cjk == 0 and words == 0:
        return "zh"
    return "zh" if 2 * cjk >= words else "en"


def split_requirement(text: str, language: Literal["zh", "en"] | None = None) -> list[RequirementPoint]:
    """The testable points of ``text``, in order, numbered R1..Rn."""
    lang = language or detect_language(text)
    points: list[str] = []
    seen: set[str] = set()
    for candidate in _candidates(text, lang):
        key = _NORMALISE.sub("", candidate.lower())
        if key and key not in seen and _testable(candidate):
            seen.add(key)
            points.append(candidate)
    return [RequirementPoint(id=f"R{i}", text=point) for i, point in enumerate(points, start=1)]


def _candidates(text: str, lang: str) -> list[str]:
    out: list[str] = []
    lead = ""  # "The password must:" carries over to the list items below it
    context = False  # inside a background / goals section
    for raw_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw_line.strip()
        heading = _context_heading(line)
        if heading is not None:
            context = heading
            lead = ""
            continue
        if not line or line.startswith("#") or _TABLE_RULE.match(line):
            lead = ""
            continue
        is_item = bool(_BULLET.match(line))
        line = _LABEL.sub("", _BULLET.sub("", line)).strip().strip("|").strip()
        if not line or context or _CONTEXT_HEADING.match(line):
            continue
        if line.endswith((":", "：")):
            body = _LEAD_IN_SUFFIX.sub("", line[:-1]).strip()
            lead = body if _MODAL.search(body) and not _HEADING_WORDS.match(body) and len(body) <= 60 else ""
            continue
        if not is_item:
            lead = ""
        for sentence in _sentences(line):
            if lead:
                sentence = f"{lead}{_joiner(lead, lang)}{sentence}"
            out.append(sentence)
    return out


def _context_heading(line: str) -> bool | None:
    """``True`` entering a background/goals section, ``False`` entering any other section, else ``None``."""
    body = _BULLET.sub("", line.lstrip("#").strip()).strip()
    is_heading = line.startswith("#") or (bool(_SECTION.match(line)) and len(body) <= 16 and not _has_digit(body))
    is_heading = is_heading or bool(_HEADING_WORDS.match(body.rstrip(":："))) or body.endswith(("需求", "规则"))
    match = _CONTEXT_HEADING.match(body)
    if match and not match.group("rest"):
        return True
    if is_heading and len(body) <= 30 and not match:
        return False
    return None


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _joiner(lead: str, lang: str) -> str:
    if lang == "zh" or _CJK.search(lead[-1:]):
        return "：" if lang == "zh" else ": "
    return " " if _TRAILING_MODAL.search(lead) else ": "


def _sentences(line: str) -> list[str]:
    pieces: list[str] = []
    for piece in _SENTENCE_END.split(line):
        if pieces and _ABBREVIATION.search(pieces[-1].rstrip()):
            pieces[-1] += piece
        else:
            pieces.append(piece)
    cleaned = (_TRAILING.sub("", p.strip()) for p in pieces)
    return [p for p in cleaned if p]


def _has_keyword(text: str) -> bool:
    return bool(_KEYWORD_ZH.search(text) or _KEYWORD_EN.search(text))


def _testable(sentence: str) -> bool:
    if _FLUFF.match(sentence) or _HEADING_WORDS.match(sentence) or _METRIC.search(sentence):
        return False
    has_digit = any(ch.isdigit() for ch in sentence)
    if _HEADING_SUFFIX.search(sentence) and not has_digit and not _MODAL.search(sentence):
        return False
    cjk = len(_CJK.findall(sentence))
    words = len(_LATIN_WORD.findall(sentence))
    if cjk < 4 and words < 3 and not (has_digit and cjk + words >= 2):
        return False  # a heading or a fragment
    return has_digit or _has_keyword(sentence)
