"""Upload limits: zip bombs, nested archives, PDF stream bombs and oversized text refused before they are unpacked.

Each refusal is a 400 naming the limit and its ``kb.*`` setting. The parsers
run here in process (fast, exact limits); ``test_parser_pool`` runs them in
the bounded child processes the server uses, and ``test_upload_limits_live``
against a live ``aitp serve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import pytest

from agents.kb.archives import RATIO_GRACE_BYTES
from agents.kb.chunking import chunk_sections
from agents.kb.limits import ParseLimits
from agents.kb.parsers import XLSX, Section, parse_document
from core.errors import InvalidRequest
from tests.agents.kb.bombs import (
    MiB,
    docx_with,
    filler,
    make_xlsx,
    many_members_docx,
    padded_xml,
    paragraphs_xml,
    pdf_stream_bomb,
    plain_zip,
    ratios,
    xlsx_with,
    zeros,
)
from tests.agents.kb.documents import make_docx

DOC = "word/document.xml"


def refused(data: bytes, filename: str, limits: ParseLimits | None = None) -> InvalidRequest:
    started = time.perf_counter()
    with pytest.raises(InvalidRequest) as info:
        parse_document(data, None, filename, limits)
    assert time.perf_counter() - started < 2.0, "a refusal must not unpack the bomb first"
    return info.value


BOMBS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name: (build, filename, the setting the refusal names)
    "docx, 200 MiB of zeros (1000:1)": (
        lambda: docx_with({DOC: zeros(200 * MiB)}),
        "a.docx",
        "max_unpacked_member_bytes",
    ),
    "docx, 300 MiB of paragraphs (1000:1)": (
        lambda: docx_with({DOC: paragraphs_xml(300 * MiB)}),
        "a.docx",
        "max_unpacked_member_bytes",
    ),
    "docx, 20 MiB at about 150:1": (
        lambda: docx_with({DOC: padded_xml("x", filler(20 * MiB, 200, text=True))}, level=6),
        "a.docx",
        "max_compression_ratio",
    ),
    "docx, 6 x 50 MiB at 30:1": (
        lambda: docx_with({f"word/media/image{i}.bin": filler(50 * MiB, 30, seed=i) for i in range(6)}, level=6),
        "a.docx",
        "max_unpacked_bytes",
    ),
    "docx, 1500 members": (lambda: many_members_docx(1500), "a.docx", "max_archive_members"),
    "xlsx, 200 MiB sheet of zeros": (
        lambda: xlsx_with({"xl/worksheets/sheet1.xml": zeros(200 * MiB)}),
        "a.xlsx",
        "max_unpacked_member_bytes",
    ),
    "pdf, a 70 MB content stream": (lambda: pdf_stream_bomb(70 * MiB), "a.pdf", "max_pdf_stream_bytes"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_naming_the_limit(name: str) -> None:
    build, filename, setting = BOMBS[name]
    error = refused(build(), filename)
    assert error.status == 400 and error.code == "document_too_large"
    assert f"kb.{setting}" in error.message and "raise" in error.message


def test_nested_archives_are_refused_unless_allowed() -> None:
    inner = plain_zip({"bomb.txt": zeros(100 * MiB)})
    for member in ("word/embeddings/data.zip", "word/media/image1.png"):  # the name does not matter, the bytes do
        error = refused(docx_with({member: [inner]}), "a.docx")
        assert error.code == "nested_archive" and member in error.message
        assert "kb.allow_nested_archives" in error.message
    gzip_inside = docx_with({"word/embeddings/x.bin": [b"\x1f\x8b\x08\x00" + b"\0" * 100]})
    assert refused(gzip_inside, "a.docx").code == "nested_archive"
    # Allowed, the inner archive is counted but never opened: its 100 MiB is not unpacked.
    parsed = parse_document(docx_with({"word/embeddings/data.zip": [inner]}), None, "a.docx", ParseLimits(
        allow_nested_archives=True
    ))  # fmt: skip
    assert parsed.text == "Bomb\n\nx"


def sizes(data: bytes) -> dict[str, int]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: i.file_size for i in archive.infolist()}


def accepted_and_refused(data: bytes, filename: str, at: ParseLimits, past: ParseLimits, setting: str) -> None:
    assert parse_document(data, None, filename, at).text
    assert f"kb.{setting}" in refused(data, filename, past).message


def test_each_archive_limit_just_under_and_just_over() -> None:
    data = docx_with({DOC: padded_xml("Login locks after 5 failures.", filler(4 * MiB, 40, text=True))}, level=6)
    member, total, ratio = sizes(data)[DOC], sum(sizes(data).values()), ratios(data)[DOC]
    assert member > RATIO_GRACE_BYTES and 20 < ratio < 80
    accepted_and_refused(
        data,
        "a.docx",
        ParseLimits(max_unpacked_member_bytes=member),
        ParseLimits(max_unpacked_member_bytes=member - 1),
        "max_unpacked_member_bytes",
    )
    accepted_and_refused(
        data, "a.docx", ParseLimits(max_unpacked_bytes=total), ParseLimits(max_unpacked_bytes=total - 1),
        "max_unpacked_bytes",
    )  # fmt: skip
    accepted_and_refused(
        data,
        "a.docx",
        ParseLimits(max_compression_ratio=ratio * 1.01),
        ParseLimits(max_compression_ratio=ratio * 0.99),
        "max_compression_ratio",
    )
    count = len(sizes(data))
    accepted_and_refused(
        data, "a.docx", ParseLimits(max_archive_members=count), ParseLimits(max_archive_members=count - 1),
        "max_archive_members",
    )  # fmt: skip
    # Under 1 MiB unpacked, a high ratio is harmless and accepted.
    small = docx_with({DOC: padded_xml("tiny", [b" " * (RATIO_GRACE_BYTES // 2)])})
    assert ratios(small)[DOC] > 100 and parse_document(small, None, "a.docx").text == "tiny"


def test_a_damaged_archive_is_a_clear_400() -> None:
    data = bytearray(make_docx([("p", " ".join(str(i) for i in range(5000)))]))
    start = data.find(b"word/document.xml") + 200  # inside the member's deflated data
    data[start : start + 40] = b"\xff" * 40
    error = refused(bytes(data), "a.docx")
    assert error.code == "unreadable_document" and "DOCX file could not be read" in error.message


def test_pdf_limits() -> None:
    error = refused(pdf_stream_bomb(70 * MiB), "a.pdf")
    assert "kb.max_pdf_stream_bytes" in error.message
    small = pdf_stream_bomb(20_000, pages=3)
    assert len(parse_document(small, None, "a.pdf", ParseLimits(max_pdf_pages=3)).sections) == 3
    assert "kb.max_pdf_pages" in refused(small, "a.pdf", ParseLimits(max_pdf_pages=2)).message
    assert "kb.max_text_chars" in refused(small, "a.pdf", ParseLimits(max_text_chars=30_000)).message
    # Under the stream cap, a stream decodes as before.
    assert parse_document(small, None, "a.pdf", ParseLimits(max_pdf_stream_bytes=30_000)).text


def test_text_is_capped_before_parsing() -> None:
    assert "kb.max_text_chars" in refused(b"word " * 3000, "a.txt", ParseLimits(max_text_chars=10_000)).message
    html = "<p>" + "word " * 3000 + "</p>"
    assert "kb.max_text_chars" in refused(html.encode(), "a.html", ParseLimits(max_text_chars=10_000)).message
    big = docx_with({DOC: paragraphs_xml(2 * MiB)})
    limits = ParseLimits(max_text_chars=100_000, max_compression_ratio=1000)  # its paragraphs repeat: 570:1
    assert "kb.max_text_chars" in refused(big, "a.docx", limits).message


def test_chunks_are_counted_while_chunking() -> None:
    # A million sections would take seconds to cut up whole; the cap stops at the 11th chunk.
    sections: Iterable[Section] = [Section("s", "A sentence of some length.")] * 1_000_000
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match=r"more than 10 chunks.*kb\.max_chunks_per_document") as info:
        chunk_sections(list(sections), 600, 100, max_chunks=10)
    assert time.perf_counter() - started < 1.0
    assert info.value.code == "document_too_large"
    assert len(chunk_sections([Section("", "one. two. three.")], 600, 100, max_chunks=1)) == 1


def test_xlsx_sheets_become_sections() -> None:
    data = make_xlsx([["用例", "结果", None], ["登录成功", "通过", ""], [None, None, None], [1, 2.5, True]], title="T")
    parsed = parse_document(data, None, "cases.xlsx")
    assert parsed.content_type == XLSX and parsed.title == "T"
    assert [(s.heading, s.text) for s in parsed.sections] == [("Cases", "用例 | 结果\n登录成功 | 通过\n1 | 2.5 | True")]
    with pytest.raises(InvalidRequest, match=r"save it as \.xlsx"):
        parse_document(b"\xd0\xcf\x11\xe0 legacy", None, "old.xls")
    with pytest.raises(InvalidRequest, match="XLSX file could not be read"):
        parse_document(make_docx([("p", "not a workbook")]), None, "a.xlsx")
