"""Zip-based documents (DOCX, XLSX) checked before a parser opens them, so that a zip bomb is refused, not unpacked.

python-docx reads every member of the package into memory and openpyxl
streams worksheets out of the zip: both unpack whatever the archive holds.
So the archive is inspected first:

1. its declared sizes (the central directory): the member count, each
   member's unpacked size, the total, and each member's compression ratio;
2. what the members really unpack to, streamed in blocks and counted
   against the same caps; this also proves the data intact (CRC) and finds
   archives nested inside (a zip or gzip stream by its magic bytes), which
   are refused unless ``kb.allow_nested_archives``; they are never unpacked.

Refusing on declared sizes costs nothing; the stream costs at most the caps.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from core.errors import InvalidRequest

from .limits import ParseLimits, mib, over_limit

# A member smaller than this unpacks to too little to matter, whatever its ratio (XML of a
# few repeated styles easily compresses 200:1).
RATIO_GRACE_BYTES = 1024 * 1024
_BLOCK = 1024 * 1024
_ARCHIVE_MAGIC = (
    b"PK\x03\x04",  # zip (and docx, xlsx, jar ...)
    b"PK\x05\x06",  # empty zip
    b"PK\x07\x08",  # spanned zip
    b"\x1f\x8b",  # gzip
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"7z\xbc\xaf\x27\x1c",  # 7-Zip
    b"Rar!\x1a\x07",  # RAR
    b"\x28\xb5\x2f\xfd",  # zstd
)


def check_archive(data: bytes, label: str, limits: ParseLimits) -> None:
    """Raise a 400 naming the limit (and its ``kb.*`` setting) when ``data`` unpacks to too much."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise _unreadable(label, exc) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > limits.max_archive_members:
            raise over_limit(
                f"the {label} archive holds {len(members)} files",
                str(limits.max_archive_members),
                "max_archive_members",
            )
        declared = 0
        for member in members:
            _check_member_size(label, member.filename, member.file_size, limits)
            _check_ratio(label, member.filename, member.file_size, member.compress_size, limits)
            declared += member.file_size
            _check_total(label, declared, limits)
            if member.flag_bits & 0x1:
                raise InvalidRequest(
                    f"the {label} file is encrypted ({member.filename}); remove the password and upload again",
                    param="file",
                    code="encrypted_document",
                )
        unpacked = 0
        for member in members:
            unpacked = _stream(archive, member, label, limits, unpacked)


def _stream(archive: zipfile.ZipFile, member: zipfile.ZipInfo, label: str, limits: ParseLimits, total: int) -> int:
    """Unpack one member block by block, counting; returns the running total."""
    size = 0
    try:
        with archive.open(member) as stream:
            while block := stream.read(_BLOCK):
                if size == 0 and not limits.allow_nested_archives and block.startswith(_ARCHIVE_MAGIC):
                    raise InvalidRequest(
                        f"the {label} file holds another archive ({member.filename}); archives inside documents "
                        "are not unpacked: remove the embedded file or object (an embedded spreadsheet, a zip), or "
                        "save the document as PDF, and upload again; or set kb.allow_nested_archives: true",
                        param="file",
                        code="nested_archive",
                    )
                size += len(block)
                total += len(block)
                _check_member_size(label, member.filename, size, limits)
                _check_ratio(label, member.filename, size, member.compress_size, limits)
                _check_total(label, total, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise _unreadable(label, exc) from None
    return total


def _check_member_size(label: str, name: str, size: int, limits: ParseLimits) -> None:
    if size > limits.max_unpacked_member_bytes:
        raise over_limit(
            f"{name} in the {label} file unpacks to {mib(size)}",
            mib(limits.max_unpacked_member_bytes),
            "max_unpacked_member_bytes",
        )


def _check_total(label: str, total: int, limits: ParseLimits) -> None:
    if total > limits.max_unpacked_bytes:
        raise over_limit(
            f"the {label} file unpacks to at least {mib(total)}", mib(limits.max_unpacked_bytes), "max_unpacked_bytes"
        )


def _check_ratio(label: str, name: str, size: int, packed: int, limits: ParseLimits) -> None:
    if size <= RATIO_GRACE_BYTES:
        return
    ratio = size / max(packed, 1)
    if ratio > limits.max_compression_ratio:
        raise over_limit(
            f"{name} in the {label} file unpacks to {ratio:.0f} times its packed size ({mib(packed)} to "
            f"{mib(size)}), as zip bombs do",
            f"{limits.max_compression_ratio:g}:1",
            "max_compression_ratio",
            fix="re-save the document from its editor",
        )


def _unreadable(label: str, exc: BaseException) -> InvalidRequest:
    return InvalidRequest(
        f"the {label} file could not be read ({type(exc).__name__}: {str(exc)[:200]}); "
        f"it may be damaged or not a {label} file, re-save it and upload again",
        param="file",
        code="unreadable_document",
    )
