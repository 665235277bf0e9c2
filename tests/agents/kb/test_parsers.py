"""Parsers: each format through its real library, sections from headings, clear 400s for what cannot be read."""

from __future__ import annotations

import pytest

from agents.kb.parsers import DOCX, HTML, MARKDOWN, PDF, TEXT, detect_type, normalise, parse_document
from core.errors import InvalidRequest
from tests.agents.kb.documents import encrypt_pdf, make_docx, make_pdf


def test_text_encodings_and_normalisation() -> None:
    for raw in ("需求：密码8到20位\r\n\r\n\r\n\r\n第二段  ".encode(), "需求：密码8到20位\n\n第二段".encode("gb18030")):
        parsed = parse_document(raw, None, "req.txt")
        assert parsed.content_type == TEXT
        assert parsed.text == "需求：密码8到20位\n\n第二段"
    assert parse_document(b"\xef\xbb\xbfhello", None, "a.txt").text == "hello"
    assert normalise("a\u00a0b \n\n\n\nc\x07") == "a b\n\nc"


def test_type_detection() -> None:
    assert detect_type("text/markdown; charset=utf-8", None, True) == MARKDOWN
    assert detect_type("application/octet-stream", "spec.PDF", False) == PDF
    assert detect_type("text/plain", "notes.md", False) == MARKDOWN  # a vague type yields to the extension
    assert detect_type(None, "x.docx", False) == DOCX
    assert detect_type(None, None, True) == TEXT
    assert detect_type("text/csv", None, False) == TEXT
    with pytest.raises(InvalidRequest) as info:
        detect_type("application/zip", "a.zip", False)
    assert "Markdown (.md)" in info.value.message and info.value.code == "unsupported_document_type"
    with pytest.raises(InvalidRequest, match=r"save it as \.docx"):
        detect_type(None, "old.doc", False)
    with pytest.raises(InvalidRequest, match="not UTF-8"):
        parse_document(b"\x00\x01\x02binary", None, "a.txt")


def test_markdown_headings_become_sections() -> None:
    source = (
        "# 用户中心 **需求**\n\n前言\n\n## 登录\n\n```\n# not a heading\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\nRefunds\n---\nWithin 7 days."
    )
    parsed = parse_document(source, "text/markdown")
    assert parsed.title == "用户中心 需求"
    assert [s.heading for s in parsed.sections] == ["用户中心 需求", "用户中心 需求 > 登录", "用户中心 需求 > Refunds"]
    assert "# not a heading" in parsed.sections[1].text and "| 1 | 2 |" in parsed.sections[1].text
    assert parsed.text.startswith("# 用户中心")


def test_html_drops_scripts_and_navigation() -> None:
    html = (
        "<html><head><title>支付 Spec</title><style>p{color:red}</style></head><body>"
        "<nav>Home | About</nav><p>Intro   text</p><h1>Refund</h1><p>Within <b>7</b> days。</p>"
        "<script>var secret = 1;</script><h2>Limits</h2><table><tr><th>min</th><th>max</th></tr>"
        "<tr><td>1</td><td>5000</td></tr></table><ul><li>one</li><li>two</li></ul></body></html>"
    )
    parsed = parse_document(html.encode(), None, "page.html")
    assert parsed.content_type == HTML and parsed.title == "支付 Spec"
    assert "secret" not in parsed.text and "Home" not in parsed.text and "color" not in parsed.text
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("", "Intro text"),
        ("Refund", "Within 7 days。"),
        ("Refund > Limits", "min | max\n1 | 5000\n\none\ntwo"),
    ]
    assert parse_document("<html><body><h1>Only</h1><p>x</p></body></html>", "text/html").title == "Only"
    with pytest.raises(InvalidRequest, match="no text to index"):
        parse_document("<html><script>x()</script></html>", "text/html")


def test_pdf_pages_latin_and_cjk() -> None:
    data = make_pdf(
        [["Login rules", "The password must have 8 to 20 characters."], ["用户登录失败五次后锁定账户。"]],
        title="需求 Spec",
    )
    parsed = parse_document(data, "application/pdf", "spec.pdf")
    assert parsed.title == "需求 Spec"
    assert [s.heading for s in parsed.sections] == ["page 1", "page 2"]
    assert "8 to 20 characters" in parsed.sections[0].text
    assert parsed.sections[1].text == "用户登录失败五次后锁定账户。"


def test_pdf_encrypted_or_damaged_is_a_clear_400() -> None:
    data = make_pdf([["secret plan"]])
    with pytest.raises(InvalidRequest, match="encrypted with a password") as info:
        parse_document(encrypt_pdf(data, "pw"), None, "x.pdf")
    assert info.value.code == "encrypted_document"
    with pytest.raises(InvalidRequest, match="could not be read") as info:
        parse_document(data[: len(data) // 3], None, "x.pdf")
    assert info.value.code == "unreadable_document"
    with pytest.raises(InvalidRequest, match="uploaded as files"):
        parse_document("%PDF-1.7", "application/pdf")


def test_docx_headings_and_tables() -> None:
    data = make_docx(
        [
            ("h1", "登录"),
            ("p", "密码长度8到20位。"),
            ("h2", "Lockout"),
            ("p", "Five failures lock the account."),
            ("table", [["次数", "结果"], ["5", "锁定30分钟"]]),
        ],
        title="账户需求",
    )
    parsed = parse_document(data, None, "req.docx")
    assert parsed.title == "账户需求"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("登录", "密码长度8到20位。"),
        ("登录 > Lockout", "Five failures lock the account.\n\n次数 | 结果\n5 | 锁定30分钟"),
    ]
    with pytest.raises(InvalidRequest, match="DOCX file could not be read"):
        parse_document(b"PK\x03\x04 not really a zip", None, "req.docx")
