"""Image and document blocks: accepted and counted like the API, refused where it refuses them."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import pytest

from halfrate_emulator import EmulatorServer
from tests.media import pdf_bytes, png_bytes

from .helpers import request

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
    "required": ["title", "pages"],
    "additionalProperties": False,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": b64(data)},
    }


def document(data: bytes, media_type: str = "application/pdf") -> dict[str, Any]:
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": b64(data)},
    }


def with_blocks(custom_id: str, *blocks: dict[str, Any], **params: Any) -> dict[str, Any]:
    item = request(custom_id, **params)
    item["params"]["messages"] = [{"role": "user", "content": list(blocks)}]
    return item


def test_blocks_are_answered_and_counted_by_their_size_not_their_bytes(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    text = {"type": "text", "text": "What is the title?"}
    items = [
        with_blocks("img", image(png_bytes(1000, 500)), text),
        with_blocks("pdf", document(pdf_bytes(pages=3, pad=200_000)), text),
        with_blocks(
            "record",
            document(pdf_bytes(pages=1)),
            text,
            output_config={"format": {"type": "json_schema", "schema": SCHEMA}},
        ),
    ]
    batch = client.messages.batches.create(requests=items)
    server.admin.force_end(batch.id)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert {cid: r.type for cid, r in results.items()} == dict.fromkeys(
        ("img", "pdf", "record"), "succeeded"
    )
    usage = {cid: r.message.usage.input_tokens for cid, r in results.items()}  # type: ignore[union-attr]
    assert usage["img"] == 667 + 5  # 1000 x 500 / 750, then the text
    assert usage["pdf"] == 3 * 2_000 + 5  # pages, whatever the 270 KB of base64
    record = results["record"].message.content[0]  # type: ignore[union-attr]
    assert set(json.loads(record.text)) == {"title", "pages"}
    counted = client.messages.count_tokens(
        model="claude-haiku-4-5", messages=items[0]["params"]["messages"]
    )
    assert counted.input_tokens == usage["img"]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "@@@"},
            },
            "messages.0.content.0.image.source.base64.data: Invalid base64 data",
        ),
        (
            image(png_bytes(), "image/jpeg"),
            "messages.0.content.0.image.source.base64.data: Image does not match the provided "
            "media type image/jpeg",
        ),
        (
            image(png_bytes(), "image/bmp"),
            "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', "
            "'image/png', 'image/gif' or 'image/webp'",
        ),
        (
            image(png_bytes() + b"\x00" * 4_000_000),
            "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5333424 "
            "bytes > 5242880 bytes",
        ),
        (
            image(png_bytes(9000, 10)),
            "messages.0.content.0.image.source.base64.data: At least one of the image dimensions "
            "exceed max allowed size: 8000 pixels",
        ),
        (
            document(pdf_bytes(pages=101)),
            "messages.0.content.0.pdf: A maximum of 100 PDF pages may be provided.",
        ),
        (
            document(pdf_bytes(password="pw")),
            "messages.0.content.0.document.source.base64.data: The PDF specified was not valid.",
        ),
        (
            document(pdf_bytes(), "application/msword"),
            "messages.0.content.0.document.source.base64.media_type: Input should be "
            "'application/pdf'",
        ),
        (
            {"type": "image", "source": {"type": "file", "file_id": "f"}},
            "messages.0.content.0.image.source: Input tag 'file' found using 'type' does not "
            "match any of the expected tags: 'base64', 'url', 'file'",
        ),
    ],
)
def test_blocks_the_api_refuses_error_their_request_only(
    server: EmulatorServer, client: anthropic.Anthropic, block: dict[str, Any], message: str
) -> None:
    batch = client.messages.batches.create(requests=[with_blocks("bad", block), request("fine")])
    server.admin.force_end(batch.id)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["fine"].type == "succeeded"
    bad = results["bad"]
    assert bad.type == "errored"
    assert bad.error.error.type == "invalid_request_error"  # type: ignore[union-attr]
    assert bad.error.error.message == message  # type: ignore[union-attr]
