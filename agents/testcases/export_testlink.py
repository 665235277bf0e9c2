"""TestLink test-case import XML (Test Specification › a test suite › Import test cases).

What this follows: the test-case XML TestLink 1.9 exports and imports, as in
the ``testcases`` sample Xray's team converts from
(github.com/Xray-App/xray-code-snippets, ``use_cases/import_from_testlink/…/
LoginValidation.testcase.xml``) and TestLink's configuration
(``$tlCfg->importance_levels`` HIGH 3 / MEDIUM 2 / LOW 1;
``$tlCfg->testCaseStatus`` draft 1 … obsolete 5 … final 7)::

    <testcases>
      <testcase name="…">
        <summary/> <preconditions/> <execution_type>1</execution_type>
        <importance>3</importance> <status>1</status>
        <steps><step><step_number>1</step_number><actions/><expectedresults/>
               <execution_type>1</execution_type></step></steps>
        <keywords><keyword name="…"><notes/></keyword></keywords>
      </testcase>
    </testcases>

Rich-text fields hold HTML (``<p>…</p>``), escaped here as XML text, which
is the same document as TestLink's CDATA sections. A rule-based or model
draft is imported with TestLink's own *Draft* status (1) and a reviewed case
as *Final* (7), so TestLink's review workflow shows which is which; the
summary says it in words too. Test-case names are cut to TestLink's 100
characters (the full title stays in the summary). Elements other than these
(``externalid``, ``node_order``, ``version``) are left for TestLink to assign.
"""

from __future__ import annotations

import html
from xml.etree import ElementTree

from .export_base import ExportDocument, marking, xml_safe
from .schemas import Priority, TestCase

NAME_LIMIT = 100
_IMPORTANCE: dict[Priority, str] = {"P0": "3", "P1": "3", "P2": "2", "P3": "1"}
_STATUS = {"pending": "1", "accepted": "7", "rejected": "5"}  # draft, final, obsolete
_MANUAL = "1"


def write_testlink(document: ExportDocument) -> bytes:
    root = ElementTree.Element("testcases")
    for case in document.cases:
        root.append(_testcase(document, case))
    ElementTree.indent(root)
    data: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _testcase(document: ExportDocument, case: TestCase) -> ElementTree.Element:
    t = document.t
    name = case.title if len(case.title) <= NAME_LIMIT else case.title[: NAME_LIMIT - 1] + "…"
    node = ElementTree.Element("testcase", name=xml_safe(name))
    summary = [
        marking(case, document.lang),
        case.title,
        f"{t('module')}: {case.module} · {t('type')}: {t(case.type)} · {t('covers')}: {', '.join(case.covers)}",
        f"aitp {t('id')}: {case.id}",
    ]
    _text(node, "summary", _html(summary))
    _text(node, "preconditions", _html(case.preconditions))
    _text(node, "execution_type", _MANUAL)
    _text(node, "importance", _IMPORTANCE[case.priority])
    _text(node, "status", _STATUS[case.review_status])
    steps = ElementTree.SubElement(node, "steps")
    for step in case.steps:
        item = ElementTree.SubElement(steps, "step")
        _text(item, "step_number", str(step.step))
        action = [step.action] + ([f"{t('data')}: {step.data}"] if step.data else [])
        _text(item, "actions", _html(action))
        _text(item, "expectedresults", _html([step.expected]))
        _text(item, "execution_type", _MANUAL)
    keywords = ElementTree.SubElement(node, "keywords")
    for word in dict.fromkeys(["aitp", marking(case, document.lang), t(case.type), case.module]):
        keyword = ElementTree.SubElement(keywords, "keyword", name=xml_safe(word[:NAME_LIMIT]))
        _text(keyword, "notes", "")
    return node


def _text(parent: ElementTree.Element, tag: str, value: str) -> None:
    ElementTree.SubElement(parent, tag).text = xml_safe(value)


def _html(paragraphs: list[str]) -> str:
    """TestLink's rich text: one ``<p>`` per paragraph, the text itself HTML-escaped."""
    return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs if p)
