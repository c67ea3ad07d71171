"""Real, small media files made in the tests: PNG images and PDF documents."""

import io
import os
import struct
import zlib

import pypdf


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real PNG (RGB, all black) of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x00" * 3 * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def pdf_bytes(pages: int = 1, pad: int = 0, password: str | None = None) -> bytes:
    """A real PDF of blank pages; `pad` random bytes ride along as an attachment."""
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    if pad:
        writer.add_attachment("pad.bin", os.urandom(pad))
    if password is not None:
        writer.encrypt(password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
