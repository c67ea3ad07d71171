"""Document and image content blocks: validated as the API does, and counted in tokens.

The API takes base64 `image` blocks (PNG, JPEG, GIF, WebP; at most 5 MB of base64 and 8000 px
a side, with bytes that match the media type) and `document` blocks (a base64 PDF of at most
100 pages, not encrypted, or plain text). Tokens follow the API docs' rules of thumb: an image
is width x height / 750 after scaling to fit 1568 px and 1.15 megapixels; a PDF page is
text plus an image of the page, 2,000 tokens here.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from functools import lru_cache
from typing import Any

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BASE64 = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 8000
MAX_PDF_PAGES = 100
PDF_PAGE_TOKENS = 2_000
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_COUNT = re.compile(rb"/Count\s+(\d+)")


def is_media(block: Any) -> bool:
    """An image or document block (what this module checks and counts)."""
    return isinstance(block, dict) and block.get("type") in ("image", "document")


def check_block(where: str, block: dict[str, Any]) -> str | None:
    """The API's error message for a bad image or document block, or None."""
    kind = block["type"]
    source = block.get("source")
    if not isinstance(source, dict):
        return f"{where}.{kind}.source: Field required"
    if kind == "document" and source.get("type") == "text":
        ok = isinstance(source.get("data"), str) and source.get("media_type") == "text/plain"
        return (
            None if ok else f"{where}.document.source.text.media_type: Input should be 'text/plain'"
        )
    if source.get("type") != "base64":
        return (
            f"{where}.{kind}.source: Input tag {source.get('type')!r} found using 'type' does "
            "not match any of the expected tags: 'base64', 'url', 'file'"
        )
    at = f"{where}.{kind}.source.base64"
    data = source.get("data")
    if not isinstance(data, str):
        return f"{at}.data: Input should be a valid string"
    if kind == "image":
        return _check_image(at, source.get("media_type"), data)
    return _check_pdf(where, at, source.get("media_type"), data)


def _check_image(at: str, media_type: Any, data: str) -> str | None:
    if media_type not in IMAGE_TYPES:
        return f"{at}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
    if len(data) > MAX_IMAGE_BASE64:
        return f"{at}: image exceeds 5 MB maximum: {len(data)} bytes > {MAX_IMAGE_BASE64} bytes"
    raw = _decode(data)
    if raw is None:
        return f"{at}.data: Invalid base64 data"
    if _sniff(raw) != media_type:
        return f"{at}.data: Image does not match the provided media type {media_type}"
    size = image_size(raw, media_type)
    if size is not None and max(size) > MAX_IMAGE_SIDE:
        return (
            f"{at}.data: At least one of the image dimensions exceed max allowed size: "
            f"{MAX_IMAGE_SIDE} pixels"
        )
    return None


def _check_pdf(where: str, at: str, media_type: Any, data: str) -> str | None:
    if media_type != "application/pdf":
        return f"{at}.media_type: Input should be 'application/pdf'"
    raw = _decode(data)
    if raw is None:
        return f"{at}.data: Invalid base64 data"
    if not raw.startswith(b"%PDF-") or b"/Encrypt" in raw:
        return f"{at}.data: The PDF specified was not valid."
    if pdf_pages(raw) > MAX_PDF_PAGES:
        return f"{where}.pdf: A maximum of {MAX_PDF_PAGES} PDF pages may be provided."
    return None


def block_tokens(block: dict[str, Any]) -> int:
    """Input tokens of a (valid) image or document block."""
    source = block.get("source") or {}
    data = source.get("data") if isinstance(source, dict) else None
    if not isinstance(data, str):
        return 1
    if source.get("type") == "text":
        return max(1, (len(data) + 3) // 4)
    return _tokens(block["type"], data)


@lru_cache(maxsize=64)  # a block is validated, then counted: decode it once
def _tokens(kind: str, data: str) -> int:
    raw = _decode(data) or b""
    if kind == "document":
        return pdf_pages(raw) * PDF_PAGE_TOKENS
    size = image_size(raw, _sniff(raw) or "")
    if size is None or min(size) <= 0:
        return 1_600
    width, height = size
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return max(1, math.ceil(width * height * scale * scale / 750))


def _decode(data: str) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _sniff(raw: bytes) -> str | None:
    for magic, media_type in _MAGIC:
        if raw.startswith(magic):
            return media_type
    return "image/webp" if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP" else None


def pdf_pages(raw: bytes) -> int:
    """Pages of a PDF: its page objects, or its page tree's count when they are compressed."""
    counts = [int(n) for n in _COUNT.findall(raw)]
    return max(len(_PAGE.findall(raw)), max(counts, default=0), 1)


def image_size(raw: bytes, media_type: str) -> tuple[int, int] | None:
    """Width and height from an image's header (None when it cannot be read)."""
    if media_type == "image/png" and len(raw) >= 24:
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    if media_type == "image/gif" and len(raw) >= 10:
        return int.from_bytes(raw[6:8], "little"), int.from_bytes(raw[8:10], "little")
    if media_type == "image/jpeg":
        at = 2
        while at + 9 < len(raw) and raw[at] == 0xFF:
            marker, length = raw[at + 1], int.from_bytes(raw[at + 2 : at + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(raw[at + 7 : at + 9], "big"), int.from_bytes(
                    raw[at + 5 : at + 7], "big"
                )
            at += 2 + length
    if media_type == "image/webp" and raw[12:16] == b"VP8X" and len(raw) >= 30:
        return 1 + int.from_bytes(raw[24:27], "little"), 1 + int.from_bytes(raw[27:30], "little")
    return None
