"""Hostile documents built in the tests: zip bombs at chosen sizes and ratios, nested archives, PDF stream bombs.

Members are written through zipfile in 1 MiB blocks, so a 1 GB bomb never
sits in the test's memory. ``filler(ratio)`` gives data that deflates about
``ratio`` times: random bytes spread through zeros, in pieces far shorter
than deflate's 32 KiB window, so the ratio holds over any length.
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from collections.abc import Iterable, Iterator

from tests.agents.kb.documents import make_docx

MiB = 1024 * 1024
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DOC_HEAD = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{W_NS}"><w:body>'.encode()
_DOC_TAIL = b"</w:body></w:document>"


def zeros(size: int) -> Iterator[bytes]:
    block = b"\0" * MiB
    while size > 0:
        yield block[: min(size, MiB)]
        size -= MiB


def filler(size: int, ratio: float, seed: int = 1, text: bool = False) -> Iterator[bytes]:
    """``size`` bytes that deflate about ``ratio`` times (measure it: ``ZipInfo.file_size / compress_size``).

    With ``text`` the bytes are letters and spaces, fit for the inside of an XML comment.
    """
    rng = random.Random(seed)
    piece = 1024
    if text:
        noisy = max(1, round(piece / ratio * 0.9))  # letters from a small alphabet pack tighter than random bytes
        block = b"".join(
            bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=noisy)) + b" " * (piece - noisy)
            for _ in range(MiB // piece)
        )
    else:
        noisy = max(1, round(piece / ratio) - 4)  # about 4 bytes of deflate overhead per piece
        block = b"".join(rng.randbytes(noisy) + b"\0" * (piece - noisy) for _ in range(MiB // piece))
    while size > 0:
        yield block[: min(size, MiB)]
        size -= MiB


def paragraphs_xml(size: int) -> Iterator[bytes]:
    """A valid document.xml of about ``size`` bytes of repeated paragraphs: text a parser would really keep."""
    yield _DOC_HEAD
    block = (b"<w:p><w:r><w:t>" + b"a" * 2000 + b"</w:t></w:r></w:p>") * 500
    for _ in range(max(1, size // len(block))):
        yield block
    yield _DOC_TAIL


def tiny_paragraphs_xml(size: int, seed: int = 3) -> Iterator[bytes]:
    """A valid document.xml of ``size`` bytes of two-letter paragraphs: modest on disk (20:1), huge as a DOM."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghij", k=2)) for _ in range(4096)]
    block = b"".join(b"<w:p><w:r><w:t>" + word + b"</w:t></w:r></w:p>" for word in words)
    yield _DOC_HEAD
    for _ in range(size // len(block)):
        yield block
    yield _DOC_TAIL


def padded_xml(text: str, pad: Iterable[bytes]) -> Iterator[bytes]:
    """A valid document.xml with one paragraph of ``text``, then ``pad`` in comments (no text for the parser).

    One comment a block: libxml2 refuses a single text node over 10 MB.
    """
    yield _DOC_HEAD + f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>".encode()
    for block in pad:
        yield b"<!--" + block.replace(b"-", b"_") + b"-->"
    yield _DOC_TAIL


def rebuild(base: bytes, replace: dict[str, Iterable[bytes]], level: int = 9) -> bytes:
    """``base`` (a zip) with members replaced or added, each streamed in and deflated at ``level``."""
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for info in source.infolist():
            if info.filename not in replace:
                archive.writestr(info, source.read(info.filename))
        for name, blocks in replace.items():
            with archive.open(name, "w", force_zip64=True) as member:
                for block in blocks:
                    member.write(block)
    return out.getvalue()


def docx_with(replace: dict[str, Iterable[bytes]], level: int = 9) -> bytes:
    return rebuild(make_docx([("h1", "Bomb"), ("p", "x")]), replace, level)


def make_xlsx(rows: list[list[object]], title: str | None = None, sheet: str = "Cases") -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    if title:
        workbook.properties.title = title
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def xlsx_with(replace: dict[str, Iterable[bytes]], level: int = 9) -> bytes:
    return rebuild(make_xlsx([["a", "b"]]), replace, level)


def many_members_docx(count: int) -> bytes:
    return docx_with({f"customXml/item{i}.xml": [b"<a/>"] for i in range(count)})


def plain_zip(members: dict[str, Iterable[bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, blocks in members.items():
            with archive.open(name, "w", force_zip64=True) as member:
                for block in blocks:
                    member.write(block)
    return out.getvalue()


def ratios(data: bytes) -> dict[str, float]:
    """Each member's unpacked/packed ratio, as declared in the archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: i.file_size / max(i.compress_size, 1) for i in archive.infolist()}


def pdf_stream_bomb(decoded: int, pages: int = 1) -> bytes:
    """A valid PDF whose page content streams each decode to about ``decoded`` bytes of real text operators."""
    line = b"BT /F1 12 Tf 72 700 Td (" + b"A" * 10_000 + b") Tj ET\n"
    compressor = zlib.compressobj(9)
    packed = [compressor.compress(line * (decoded // len(line) + 1))]
    packed.append(compressor.flush())
    content = b"".join(packed)
    objects: list[bytes] = []
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(
            f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode() + content + b"\nendstream"
        )
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
