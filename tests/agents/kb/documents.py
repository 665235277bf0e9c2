"""Test documents built in the tests: a minimal hand-written PDF (Latin and CJK text) and DOCX via python-docx."""

from __future__ import annotations

import io

_CMAP = """/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
{count} beginbfchar
{chars}
endbfchar
endcmap
CMapName currentdict /CMap defineresource pop
end
end"""


def _literal(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _utf16(text: str) -> str:
    return "<FEFF" + text.encode("utf-16-be").hex().upper() + ">"


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A valid PDF with one text line per entry; lines with non-Latin-1 characters use a CJK font with ToUnicode."""
    used = sorted({ch for page in pages for line in page for ch in line if ord(ch) > 0xFF})
    objects: list[str] = []  # object n is objects[n - 1]

    def add(body: str) -> int:
        objects.append(body)
        return len(objects)

    catalog = add("")  # filled in below
    pages_id = add("")
    helvetica = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    fonts = f"/F1 {helvetica} 0 R"
    if used:
        chars = "\n".join(f"<{ord(c):04X}> <{ord(c):04X}>" for c in used)
        cmap = _CMAP.format(count=len(used), chars=chars)
        to_unicode = add(f"<< /Length {len(cmap.encode())} >>\nstream\n{cmap}\nendstream")
        descriptor = add(
            "<< /Type /FontDescriptor /FontName /STSong-Light /Flags 4 /FontBBox [0 -200 1000 900] "
            "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 80 >>"
        )
        cid = add(
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /STSong-Light "
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
            f"/FontDescriptor {descriptor} 0 R /DW 1000 /CIDToGIDMap /Identity >>"
        )
        cjk = add(
            "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /Identity-H "
            f"/DescendantFonts [{cid} 0 R] /ToUnicode {to_unicode} 0 R >>"
        )
        fonts += f" /F2 {cjk} 0 R"
    kids = []
    for page in pages:
        ops = ["BT", "72 760 Td"]
        for line in page:
            if any(ord(ch) > 0xFF for ch in line):
                ops += ["/F2 12 Tf", "<" + "".join(f"{ord(c):04X}" for c in line) + "> Tj"]
            else:
                ops += ["/F1 12 Tf", f"{_literal(line)} Tj"]
            ops.append("0 -18 Td")
        ops.append("ET")
        content = "\n".join(ops)
        stream = add(f"<< /Length {len(content.encode('latin-1'))} >>\nstream\n{content}\nendstream")
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << {fonts} >> >> /Contents {stream} 0 R >>"
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>"
    objects[pages_id - 1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    info = add(f"<< /Title {_utf16(title)} >>") if title else None
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    trailer = f"<< /Size {len(objects) + 1} /Root {catalog} 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out.write(f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def encrypt_pdf(data: bytes, password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: list[tuple[str, object]], title: str | None = None) -> bytes:
    """``("h1", text)``, ``("p", text)`` or ``("table", [[cell, ...], ...])`` in order."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for kind, value in blocks:
        if kind.startswith("h"):
            document.add_heading(str(value), level=int(kind[1]))
        elif kind == "table":
            rows = value if isinstance(value, list) else []
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = str(cell)
        else:
            document.add_paragraph(str(value))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
