"""Helpers shared by the emulator tests."""

from __future__ import annotations

from typing import Any

import httpx2

HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01"}


def request(custom_id: str, text: str = "hello", **params: Any) -> dict[str, Any]:
    """One batch request item with sensible defaults."""
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(params)
    return {"custom_id": custom_id, "params": body}


def raw(base_url: str) -> httpx2.Client:
    """A plain HTTP client with valid auth and version headers."""
    return httpx2.Client(base_url=base_url, headers=HEADERS, timeout=60)
