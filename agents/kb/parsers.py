"""Document parsers: text, Markdown, HTML, PDF, DOCX and XLSX into normalised text cut into heading sections.

Each parser uses a real library (markdown-it-py, selectolax/lexbor, pypdf,
python-docx, openpyxl). The type comes from the content type, or from the file
name's extension when the content type says nothing specific (``text/plain``,
``application/octet-stream``). Anything the parsers cannot read answers 400
naming the cause and the fix, never a traceback.

Uploads are untrusted: zip-based formats pass :func:`archives.check_archive`
before their library opens them, PDF streams decode under a size cap, and the
text a document yields is capped (:class:`ParseLimits`). The server runs these
parsers in a memory-bounded child process (:mod:`agents.kb.parser_pool`),
so a limit missed here still cannot take the server down.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from core.errors import InvalidRequest

from .archives import check_archive
from .limits import ParseLimits, mib, over_limit

TEXT, MARKDOWN, HTML, PDF, DOCX, XLSX = (
    "text/plain",
    "text/markdown",
    "text/html",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)
SUPPORTED = "text (.txt), Markdown (.md), HTML (.html), PDF (.pdf), DOCX (.docx) and XLSX (.xlsx)"

_CONTENT_TYPES = {
    "text/plain": TEXT,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "application/pdf": PDF,
    DOCX: DOCX,
    XLSX: XLSX,
}
_EXTENSIONS = {
    ".txt": TEXT,
    ".text": TEXT,
    ".log": TEXT,
    ".csv": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
    ".xlsx": XLSX,
}
_VAGUE_TYPES = {"", "text/plain", "application/octet-stream", "binary/octet-stream"}
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Section:
    heading: str  # the heading path, "Login > Password"; "" before the first heading
    text: str


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    content_type: str
    title: str | None
    text: str  # the normalised full text, headings included
    sections: list[Section]


def normalise(text: str) -> str:
    """NFC, ``\\n`` line ends, no control characters or trailing blanks, at most one empty line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def detect_type(content_type: str | None, filename: str | None, is_text: bool) -> str:
    """The canonical content type to parse as, or a 400 naming the supported types."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    extension = PurePosixPath(filename).suffix.lower() if filename else ""
    if declared in _CONTENT_TYPES and declared not in _VAGUE_TYPES:
        return _CONTENT_TYPES[declared]
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    if declared in _VAGUE_TYPES and (is_text or declared == "text/plain"):
        return TEXT
    if declared.startswith("text/"):
        return TEXT
    legacy = {".doc": " (legacy .doc: save it as .docx)", ".xls": " (legacy .xls: save it as .xlsx)"}
    hint = legacy.get(extension, "")
    raise InvalidRequest(
        f"unsupported document type (content type {content_type or 'none'!r}, file {filename or 'none'!r}){hint}; "
        f"supported: {SUPPORTED}",
        param="content_type",
        code="unsupported_document_type",
    )


def parse_document(
    data: bytes | str,
    content_type: str | None = None,
    filename: str | None = None,
    limits: ParseLimits | None = None,
) -> ParsedDocument:
    """Parse ``data`` by its type; raises :class:`InvalidRequest` for unreadable, empty or too large documents."""
    limits = limits or ParseLimits()
    kind = detect_type(content_type, filename, isinstance(data, str))
    if kind in _BINARY_PARSERS:
        if isinstance(data, str):
            raise InvalidRequest(
                f"{kind} documents must be uploaded as files (multipart/form-data field 'file'), not sent as text",
                param="content_type",
            )
        parsed = _BINARY_PARSERS[kind](data, limits)
    else:
        text = data if isinstance(data, str) else decode_text(data)
        _check_text(len(text), limits)
        parsed = _TEXT_PARSERS[kind](text)
    _check_text(len(parsed.text), limits)
    if not parsed.text:
        raise InvalidRequest(
            "the document has no text to index (empty, only markup, or a scanned PDF without a text layer)",
            param="file" if isinstance(data, bytes) else "text",
            code="empty_document",
        )
    return parsed


def _check_text(chars: int, limits: ParseLimits) -> None:
    if chars > limits.max_text_chars:
        raise over_limit(
            f"the document yields at least {chars} characters of text", str(limits.max_text_chars), "max_text_chars"
        )


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else GB 18030 (which covers GBK/GB2312); binary data is refused."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise InvalidRequest(
        f"the document is not UTF-8 or GB 18030 text (binary data?); re-save it as UTF-8 or upload one of: {SUPPORTED}",
        param="file",
        code="undecodable_document",
    )


# ------------------------------------------------------------------ sections


class _Sections:
    """Collects body text under a heading path (h1 > h2 > ...) while a parser walks the document."""

    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.sections: list[Section] = []
        self.lines: list[str] = []  # the current section's body
        self.full: list[str] = []  # the whole text, headings included
        self.first_heading: str | None = None

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self.flush()
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, text))
        self.full.append(text)
        if self.first_heading is None:
            self.first_heading = text

    def body(self, text: str) -> None:
        self.lines.append(text)
        self.full.append(text)

    def flush(self) -> None:
        body = normalise("\n\n".join(self.lines))
        if body:
            self.sections.append(Section(" > ".join(t for _, t in self.path), body))
        self.lines = []

    def done(self, content_type: str, title: str | None) -> ParsedDocument:
        self.flush()
        title = " ".join((title or "").split()) or self.first_heading
        return ParsedDocument(
            content_type, title[:500] if title else None, normalise("\n\n".join(self.full)), self.sections
        )


# -------------------------------------------------------------- text formats


def parse_text(text: str) -> ParsedDocument:
    text = normalise(text)
    return ParsedDocument(TEXT, None, text, [Section("", text)] if text else [])


def parse_markdown(source: str) -> ParsedDocument:
    """Top-level headings (ATX and setext) start sections; bodies keep their Markdown (tables, lists, code)."""
    from markdown_it import MarkdownIt

    source = normalise(source)
    lines = source.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    out = _Sections()
    title: str | None = None
    cursor = 0
    for i, token in enumerate(tokens):
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        start, end = token.map
        out.lines.append("\n".join(lines[cursor:start]))
        inline = tokens[i + 1]
        text = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline")) or inline.content
        level = int(token.tag[1])
        out.heading(level, text)
        if level == 1 and title is None:
            title = " ".join(text.split())
        cursor = end
    out.lines.append("\n".join(lines[cursor:]))
    out.flush()
    return ParsedDocument(MARKDOWN, title or out.first_heading, source, out.sections)


_DROP_TAGS = ["script", "style", "nav", "noscript", "template", "iframe", "svg", "object"]
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote", "pre", "ul", "ol", "li",
    "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "figure", "figcaption", "form", "fieldset",
    "address", "details", "summary", "hr", "br", "caption",
}  # fmt: skip
_CELLS = {"td", "th"}
_SPACES = re.compile(r"[ \t\n\r\f\v]+")


def parse_html(source: str) -> ParsedDocument:
    """Scripts, styles and navigation dropped; h1-h6 start sections; table rows become ``a | b`` lines."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(source)
    tree.strip_tags(_DROP_TAGS)
    title_node = tree.css_first("title")
    title = title_node.text(deep=True) if title_node is not None else None
    h1 = tree.css_first("h1")
    if not (title and title.strip()) and h1 is not None:
        title = h1.text(deep=True)
    out = _Sections()
    root = tree.body or tree.root
    if root is not None:
        _walk_html(root, out)
    return out.done(HTML, title)


def _walk_html(root: Any, out: _Sections) -> None:
    # An explicit stack: deeply nested pages must not hit Python's recursion limit.
    parts: list[str] = []
    pre_depth = 0
    stack: list[tuple[Any, bool]] = [(root, False)]

    def paragraph() -> None:
        text = "".join(parts)
        parts.clear()
        lines = (line.strip().removesuffix("|").strip() for line in text.split("\n"))
        body = "\n".join(line for line in lines if line)
        if body:
            out.body(body)

    while stack:
        node, closing = stack.pop()
        tag = node.tag
        if closing:
            if tag == "pre":
                pre_depth -= 1
            if tag in _CELLS:
                parts.append(" | ")
            elif tag in ("tr", "li", "br", "dt", "dd"):
                parts.append("\n")
            else:
                paragraph()
            continue
        if tag == "-text":
            text = node.text_content or ""
            parts.append(text if pre_depth else _SPACES.sub(" ", text))
            continue
        if tag in _HEADINGS:
            paragraph()
            out.heading(_HEADINGS[tag], node.text(deep=True))
            continue
        if not node.is_element_node:
            continue
        if tag in _BLOCKS or tag in _CELLS:
            if tag == "pre":
                pre_depth += 1
            if tag not in _CELLS and tag not in ("tr", "li", "br", "dt", "dd"):
                paragraph()
            stack.append((node, True))
        children = list(node.iter(include_text=True))
        stack.extend((child, False) for child in reversed(children))
    paragraph()


# ------------------------------------------------------------ binary formats


def parse_pdf(data: bytes, limits: ParseLimits) -> ParsedDocument:
    """One section a page (``page 3``); the title from the document information.

    pypdf decodes each stream under ``kb.max_pdf_stream_bytes``; the page
    count and the text extracted so far are checked as the pages are read.
    """
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    cap = limits.max_pdf_stream_bytes
    caps: dict[str, Any] = {
        name: cap
        for name in (
            "maximum_declared_stream_length",
            "array_based_stream_maximum_output_length",
            "jbig2_maximum_output_length",
            "lzw_maximum_output_length",
            "run_length_maximum_output_length",
            "zlib_maximum_output_length",
            "brotli_maximum_output_length",
            "image_maximum_buffer_size",
        )
    }
    try:
        with apply_configuration(None, **caps):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise FileNotDecryptedError("password required")
            count = len(reader.pages)
            if count > limits.max_pdf_pages:
                raise over_limit(f"the PDF has {count} pages", str(limits.max_pdf_pages), "max_pdf_pages")
            pages: list[str] = []
            chars = 0
            for page in reader.pages:
                pages.append(page.extract_text() or "")
                chars += len(pages[-1])
                _check_text(chars, limits)
            meta = reader.metadata
            title = meta.title if meta is not None else None
    except (InvalidRequest, MemoryError):
        raise
    except LimitReachedError as exc:
        if "decompress" in str(exc) or "length" in str(exc):
            raise over_limit(
                f"a stream in the PDF decodes to more than {mib(cap)} ({exc})", mib(cap), "max_pdf_stream_bytes"
            ) from None
        raise InvalidRequest(
            f"the PDF goes beyond a safety limit of the PDF reader ({exc}); re-export it (print to PDF) and upload "
            "again",
            param="file",
            code="document_too_large",
        ) from None
    except FileNotDecryptedError:
        raise InvalidRequest(
            "the PDF is encrypted with a password; remove it (print to PDF, or qpdf --decrypt) and upload again",
            param="file",
            code="encrypted_document",
        ) from None
    except Exception as exc:  # untrusted input may break the parser in any way
        raise InvalidRequest(
            f"the PDF could not be read ({type(exc).__name__}: {str(exc)[:200]}); it may be damaged, re-export it",
            param="file",
            code="unreadable_document",
        ) from None
    out = _Sections()
    for number, text in enumerate(pages, start=1):
        text = normalise(text)
        if text:
            out.path = [(1, f"page {number}")]
            out.body(text)
            out.flush()
    return out.done(PDF, title if isinstance(title, str) else None)


def parse_docx(data: bytes, limits: ParseLimits) -> ParsedDocument:
    """``Heading N`` (or ``标题 N``) paragraphs start sections; tables become ``a | b`` lines, in document order."""
    import docx
    from docx.table import Table

    check_archive(data, "DOCX", limits)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        title = document.core_properties.title
    except MemoryError:
        raise
    except Exception as exc:  # untrusted input may break the parser in any way
        raise InvalidRequest(
            f"the DOCX file could not be read ({type(exc).__name__}: {str(exc)[:200]}); "
            "it may be damaged or not a Word 2007+ document, re-save it as .docx",
            param="file",
            code="unreadable_document",
        ) from None
    out = _Sections()
    chars = 0
    for block in blocks:
        if isinstance(block, Table):
            text = "\n".join(_row_text(row.cells) for row in block.rows)
            chars += len(text)
            _check_text(chars, limits)
            out.body(text)
            continue
        text = block.text
        chars += len(text)
        _check_text(chars, limits)
        style = (block.style.name if block.style is not None else "") or ""
        match = _HEADING_STYLE.match(style.strip())
        if style == "Title":
            title = title or text
            out.heading(1, text)
        elif match:
            out.heading(int(match.group(1)), text)
        elif text.strip():
            out.body(text)
    return out.done(DOCX, title or None)


def parse_xlsx(data: bytes, limits: ParseLimits) -> ParsedDocument:
    """One section a worksheet (its name); each row becomes an ``a | b`` line of its non-empty cells' values."""
    from openpyxl import load_workbook

    check_archive(data, "XLSX", limits)
    out = _Sections()
    chars = 0
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            title = workbook.properties.title
            for sheet in workbook.worksheets:
                # A sheet's declared dimension can claim a million columns; the rows as stored are what counts.
                sheet.reset_dimensions()  # type: ignore[union-attr]
                out.heading(1, str(sheet.title))
                lines: list[str] = []
                for row in sheet.iter_rows(values_only=True):
                    line = " | ".join(" ".join(str(v).split()) for v in row if v is not None and str(v).strip())
                    if line:
                        lines.append(line)
                        chars += len(line) + 1
                        _check_text(chars, limits)
                if lines:
                    out.body("\n".join(lines))
        finally:
            workbook.close()
    except (InvalidRequest, MemoryError):
        raise
    except Exception as exc:  # untrusted input may break the parser in any way
        raise InvalidRequest(
            f"the XLSX file could not be read ({type(exc).__name__}: {str(exc)[:200]}); "
            "it may be damaged or not an Excel 2007+ workbook, re-save it as .xlsx",
            param="file",
            code="unreadable_document",
        ) from None
    return out.done(XLSX, title or None)


def _row_text(cells: Iterable[Any]) -> str:
    seen: set[int] = set()
    texts: list[str] = []
    for cell in cells:
        if id(cell._tc) in seen:  # a merged cell repeats for each grid column it spans; keep one
            continue
        seen.add(id(cell._tc))
        texts.append(" ".join(cell.text.split()))
    return " | ".join(texts)


_TEXT_PARSERS: dict[str, Callable[[str], ParsedDocument]] = {
    TEXT: parse_text,
    MARKDOWN: parse_markdown,
    HTML: parse_html,
}
_BINARY_PARSERS: dict[str, Callable[[bytes, ParseLimits], ParsedDocument]] = {
    PDF: parse_pdf,
    DOCX: parse_docx,
    XLSX: parse_xlsx,
}
