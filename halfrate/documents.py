"""Folder sources: one row per file; texts as text, PDFs and images as base64 content blocks.

`.txt`, `.md`, `.eml` and `.html` files are read as text (UTF-8, else Latin-1); one with a NUL
byte in its first 8 KiB is binary data (or UTF-16 text), not text: its text is staged as null,
and extract quarantines it as "not text" (an empty or blank one as "empty file" or "blank
file": halfrate/quarantine.py). `.pdf` files
become a `document` block and `.png`, `.jpg`, `.gif` and `.webp` files an `image` block, both
base64-encoded in the request. The API takes a request of up to 32 MB, a PDF of up to 100
pages that is not encrypted, and an image of up to 5 MB base64 and 8000 px a side: a file over
those limits, one that cannot be read (a damaged or encrypted PDF, an image whose bytes are
not one), and a file of any other type is staged with a `doc_problem` that extract turns into
its quarantine reason. Nothing is decided per request later: every check is per file, here.

E-mails (`.eml`) also fill the `email_*` columns from their headers (Python's `email` package),
so a job can put them in its prompt or score extracted fields against them.

A row's `doc_tokens` estimates what its document costs in input tokens (the estimate step adds
it to the text's tokens), by the API docs' rules of thumb: a PDF page is 1,500 to 3,000 tokens
(2,250 is used), an image w x h / 750 after scaling to fit 1568 px and 1.15 megapixels.
"""

import base64
import io
import logging
import math
import re
from datetime import UTC
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from halfrate.progress_hooks import step

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".eml", ".html", ".htm")
PDF_SUFFIX = ".pdf"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MAX_REQUEST_BYTES = 32_000_000
"""The Messages API's request limit (a batch request is one)."""
REQUEST_HEADROOM = 1_000_000
"""Left of a request for the instructions, the prompt and the JSON around a document."""
MAX_PDF_PAGES = 100
MAX_IMAGE_BASE64 = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 8000
PDF_PAGE_TOKENS = 2_250
IMAGE_TOKENS_UNKNOWN = 1_600
CHUNK_BYTES = 16 << 20  # staged rows are written a few files or ~16 MB at a time
CHUNK_FILES = 512

EMAIL_COLUMNS = (
    "email_from_name", "email_from_address", "email_subject", "email_date", "email_list_id",
    "email_is_reply",
)  # fmt: skip
FOLDER_COLUMNS = ("path", "text", *EMAIL_COLUMNS)
"""The columns a folder source offers: the file's path in the folder (the row id), its text,
and for e-mails their headers."""
DOCUMENT_COLUMNS = (
    "doc_block", "doc_media_type", "doc_data", "doc_bytes", "doc_tokens", "doc_problem",
)  # fmt: skip
"""Staged beside them for extract: the block type (document, image; null for a text), the
media type, the base64 data and its length (so a request's size is known without reading the
data), the estimated tokens, and why the file cannot be sent."""
SCHEMA = pa.schema(
    [(name, pa.string()) for name in FOLDER_COLUMNS]
    + [
        ("doc_block", pa.string()),
        ("doc_media_type", pa.string()),
        ("doc_data", pa.large_string()),
        ("doc_bytes", pa.int64()),
        ("doc_tokens", pa.int64()),
        ("doc_problem", pa.string()),
    ]
)
SUPPORTED = "text (.txt, .md, .eml, .html), PDF (.pdf) and images (.png, .jpg, .gif, .webp)"
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
BINARY_SNIFF_BYTES = 8192
"""A text file with a NUL byte this near its start is binary data, not text (as git decides)."""
_REPLY = re.compile(r"^\s*(re|aw|sv)\s*(\[\d+\])?\s*:", re.IGNORECASE)


def stage_folder(docs: list[tuple[str, Path]], target: Path) -> bool:
    """Write one row per file to `target` (Parquet), a chunk at a time; whether any of them
    is a PDF or an image to send as a block."""
    blocks = False
    # base64 of a PDF or image neither compresses nor repeats: encoding it only costs memory
    plain = {"doc_data": "NONE"}
    dictionary = [name for name in SCHEMA.names if name != "doc_data"]
    with (
        pq.ParquetWriter(target, SCHEMA, compression=plain, use_dictionary=dictionary) as writer,
        step(f"extract: reading {len(docs):,} files", len(docs), "files") as progress,
    ):
        rows: list[dict[str, Any]] = []
        size = 0
        for name, path in docs:
            row = read_file(name, path)
            blocks = blocks or row["doc_block"] is not None
            rows.append(row)
            size += len(row["doc_data"] or "") + len(row["text"] or "")
            if size >= CHUNK_BYTES or len(rows) >= CHUNK_FILES:
                writer.write_table(pa.Table.from_pylist(rows, SCHEMA))
                progress.advance(len(rows))
                rows, size = [], 0
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, SCHEMA))
            progress.advance(len(rows))
    return blocks


def read_file(name: str, path: Path) -> dict[str, Any]:
    """One staged row: the file as text, or as a block, or the problem that keeps it out."""
    row: dict[str, Any] = dict.fromkeys(SCHEMA.names) | {"path": name, "doc_tokens": 0}
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        data = path.read_bytes()
        row["text"] = decode(data)  # None: binary (quarantined as "not text")
        if suffix == ".eml" and row["text"] is not None:
            row |= email_columns(data)
        return row
    try:
        if suffix == PDF_SUFFIX:
            return row | read_pdf(path)
        if suffix in IMAGE_SUFFIXES:
            return row | read_image(path)
    except _Unusable as exc:
        return row | {"doc_problem": str(exc)}
    shown = repr(suffix) if suffix else "(no suffix)"
    return row | {
        "doc_problem": f"unsupported file type {shown}: a folder source takes {SUPPORTED}"
    }


class _Unusable(Exception):
    """A file that cannot be sent; the message is its quarantine reason."""


def read_pdf(path: Path) -> dict[str, Any]:
    """A PDF as a `document` block: checked for size, encryption and pages first."""
    import pypdf  # only folders with PDFs need it

    _check_size(path, MAX_REQUEST_BYTES - REQUEST_HEADROOM, "a request holds 32 MB", "split it")
    data = path.read_bytes()
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported below
    stream = io.BytesIO(data)  # closed after: the reader's cycles would keep it until a GC
    try:
        reader = pypdf.PdfReader(stream)
        if reader.is_encrypted:
            raise _Unusable("encrypted PDF: the API takes PDFs without a password; decrypt it")
        pages = len(reader.pages)
    except (pypdf.errors.PyPdfError, ValueError, KeyError, OSError) as exc:
        raise _Unusable(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    finally:
        stream.close()
    if pages > MAX_PDF_PAGES:
        raise _Unusable(f"PDF of {pages} pages: a request takes {MAX_PDF_PAGES}; split it")
    if pages == 0:
        raise _Unusable("PDF without pages")
    return _block("document", "application/pdf", data, pages * PDF_PAGE_TOKENS)


def read_image(path: Path) -> dict[str, Any]:
    """An image as an `image` block, its media type read from its bytes."""
    _check_size(path, MAX_IMAGE_BASE64, "an image may be 5 MB", "shrink it")
    data = path.read_bytes()
    media_type = sniff_image(data)
    if media_type is None:
        raise _Unusable(f"not an image: the bytes of {path.name} are no PNG, JPEG, GIF or WebP")
    size = image_size(data, media_type)
    if size is not None and max(size) > MAX_IMAGE_SIDE:
        raise _Unusable(
            f"image of {size[0]} x {size[1]} px: the API takes at most {MAX_IMAGE_SIDE} px a "
            "side; shrink it"
        )
    return _block("image", media_type, data, image_tokens(size))


def _check_size(path: Path, limit: int, rule: str, fix: str) -> None:
    size = path.stat().st_size
    encoded = 4 * math.ceil(size / 3)
    if encoded > limit:
        raise _Unusable(
            f"file too large: {size / 1e6:,.1f} MB is {encoded / 1e6:,.1f} MB base64-encoded and "
            f"{rule}; {fix}"
        )


def _block(kind: str, media_type: str, data: bytes, tokens: int) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode("ascii")
    return {
        "doc_block": kind,
        "doc_media_type": media_type,
        "doc_data": encoded,
        "doc_bytes": len(encoded),
        "doc_tokens": tokens,
    }


def sniff_image(data: bytes) -> str | None:
    """The media type an image's first bytes say it is (None: not one the API takes)."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_size(data: bytes, media_type: str) -> tuple[int, int] | None:
    """Width and height from the image's header (None when it cannot be read)."""
    try:
        if media_type == "image/png":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if media_type == "image/gif":
            return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        if media_type == "image/jpeg":
            return _jpeg_size(data)
        return _webp_size(data)
    except IndexError:
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(
                data[at + 5 : at + 7], "big"
            )
        at += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(
            data[28:30], "little"
        ) & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_tokens(size: tuple[int, int] | None) -> int:
    """Input tokens of an image: w x h / 750 after the API scales it to 1568 px, 1.15 MP."""
    if size is None or min(size) <= 0:
        return IMAGE_TOKENS_UNKNOWN
    width, height = size
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return max(1, math.ceil(width * height * scale * scale / 750))


def decode(data: bytes) -> str | None:
    """A text file's text (UTF-8, else Latin-1); None for binary data (a NUL byte in its
    first 8 KiB)."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def email_columns(data: bytes) -> dict[str, str | None]:
    """An e-mail's header fields, as Python's `email` package reads them (None: absent)."""
    message = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)

    def header(name: str) -> str | None:
        try:
            value = message.get(name)
        except Exception:  # a header the parser cannot decode counts as absent
            return None
        return " ".join(str(value).split()) or None if value is not None else None

    name, address = parseaddr(header("From") or "")
    subject = header("Subject")
    list_id = header("List-Id")
    found = re.search(r"<([^>]+)>", list_id or "")
    reply = header("In-Reply-To") is not None or bool(_REPLY.match(subject or ""))
    return {
        "email_from_name": name or None,
        "email_from_address": address or None,
        "email_subject": subject,
        "email_date": _utc(header("Date")),
        "email_list_id": found.group(1) if found else list_id,
        "email_is_reply": "true" if reply else "false",
    }


def _utc(value: str | None) -> str | None:
    """A Date header as ISO 8601 in UTC (`2002-08-22T18:23:00Z`), or None if unreadable."""
    try:
        parsed = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_block() -> pl.Expr:
    """True where the staged file is sent as a document or image block."""
    return pl.col("doc_block").is_not_null()


def content_blocks(text: pl.Expr, data: pl.Expr | None = None) -> pl.Expr:
    """The JSON of each row's content: its document or image block, then its text (if any).

    Base64 needs no JSON escaping, and Polars' JSON encoding of the text block is byte for
    byte orjson's, so this is what `json.dumps` of the blocks would give. `data` stands in
    for the base64 data (`content_blocks_bytes` measures without it).
    """
    media = pl.concat_str(
        pl.lit('{"type":"'),
        pl.col("doc_block"),
        pl.lit('","source":{"type":"base64","media_type":"'),
        pl.col("doc_media_type"),
        pl.lit('","data":"'),
        pl.col("doc_data") if data is None else data,
        pl.lit('"}}'),
    )
    words = text.fill_null("")
    has_text = words.str.contains(r"\S")
    text_block = pl.struct(type=pl.lit("text"), text=words).struct.json_encode()
    return pl.concat_str(  # one pass over the (large) base64: no lists of blocks
        pl.lit("["),
        pl.when(has_block()).then(media).otherwise(pl.lit("")),
        pl.when(has_block() & has_text).then(pl.lit(",")).otherwise(pl.lit("")),
        pl.when(has_text).then(text_block).otherwise(pl.lit("")),
        pl.lit("]"),
    )


def content_blocks_bytes(text: pl.Expr) -> pl.Expr:
    """The length in bytes of `content_blocks(text)`, without reading the base64 data."""
    data = pl.when(has_block()).then(pl.col("doc_bytes")).otherwise(0)
    return content_blocks(text, pl.lit("")).str.len_bytes() + data
