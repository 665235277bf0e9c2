"""ZenTao (禅道) test-case import CSV (测试 › 用例 › 导入).

What this follows:

- ZenTao matches an imported file's columns by their *titles* in the language
  of its user interface: the import fields are the export fields
  (``$config->testcase->exportFields`` in ``module/testcase/config.php``)
  named by ``module/testcase/lang/zh-cn.php`` / ``en.php`` of
  github.com/easysoft/zentaopms (e.g. ``module`` 所属模块, ``title`` 用例标题,
  ``precondition`` 前置条件, ``stepDesc`` 步骤, ``stepExpect`` 预期,
  ``keywords`` 关键词, ``pri`` 优先级, ``type`` 用例类型, ``stage`` 适用阶段;
  the English names are the ones of ``en.php``). Hence ``lang`` picks the
  header row for a Chinese or an English ZenTao.
- ZenTao's import guide (zentao.net, "导入Excel、csv参考文档"): 用例标题 and
  用例类型 are required; 步骤 and 预期 hold one numbered line each
  (``1. …``), the n-th expectation belonging to the n-th step.
- Values are those of the language lists: 优先级 1 (highest) to 4,
  用例类型 功能测试 / 安全相关 (``typeList``), 适用阶段 功能测试阶段
  (``stageList``).

ZenTao has no field for "drafted by a rule engine": 关键词 carries ``aitp``,
the case id and the draft or reviewed marking. 所属模块 needs ZenTao's own
module ids (``名称(#id)``) to land in a module; a plain name is kept as
written. UTF-8 with a BOM (choose UTF-8 in ZenTao's import dialog).
"""

from __future__ import annotations

from .export_base import ExportDocument, action_text, marking, numbered
from .export_tables import csv_bytes
from .schemas import CaseType, Priority

# (zh, en) column titles, in the order the import template lists them.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("所属模块", "Module"),
    ("用例标题", "Title"),
    ("前置条件", "precondition"),
    ("步骤", "Step"),
    ("预期", "Expect"),
    ("关键词", "Keywords"),
    ("优先级", "Priority"),
    ("用例类型", "Type"),
    ("适用阶段", "Stage"),
)
_PRIORITY: dict[Priority, str] = {"P0": "1", "P1": "2", "P2": "3", "P3": "4"}
# ZenTao's typeList has no boundary or negative type: they are functional tests there.
_TYPE: dict[CaseType, tuple[str, str]] = {
    "functional": ("功能测试", "Feature"),
    "boundary": ("功能测试", "Feature"),
    "negative": ("功能测试", "Feature"),
    "security": ("安全相关", "Security"),
}
_STAGE = ("功能测试阶段", "Feature testing")


def write_zentao(document: ExportDocument) -> bytes:
    lang = document.lang
    pick = 0 if lang == "zh" else 1
    rows = []
    for case in document.cases:
        keywords = ["aitp", case.id, document.t(case.type), marking(case, lang)]
        rows.append(
            [
                case.module,
                case.title,
                "\n".join(case.preconditions),
                numbered([action_text(step, lang) for step in case.steps]),
                numbered([step.expected for step in case.steps]),
                ", ".join(keywords),
                _PRIORITY[case.priority],
                _TYPE[case.type][pick],
                _STAGE[pick],
            ]
        )
    return csv_bytes([column[pick] for column in _COLUMNS], rows, bom=True)
