"""Synchronous `POST /v1/messages` and `POST /v1/messages/count_tokens`.

Cache sharing between the Messages API and batches is unreliable in production (anthropics/skills
#1475: a Messages write was not read by a batch 1 s later, batch writes were read by later
batches). The emulator makes that deterministic: a Messages call reads entries written by
batches and by earlier Messages calls, but batches only read entries written by batches.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from halfrate_emulator.cache import TTL_SECONDS, account, plan_prompt
from halfrate_emulator.errors import invalid
from halfrate_emulator.ids import new_id
from halfrate_emulator.models import is_known_model, min_cacheable_tokens
from halfrate_emulator.responder import respond
from halfrate_emulator.service import Emulator
from halfrate_emulator.validation import check_params

MESSAGES_SOURCE = "messages"


def message_digest(body: Any) -> str:
    """What the audit knows a Messages call by: a SHA-256 of its body (keys sorted)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def create_message(
    emulator: Emulator, body: Any, version: str, held: bool = False
) -> dict[str, Any]:
    """Answer a Messages create with the deterministic responder (400 on invalid params).

    The answered call is audited (it is paid for), before the caller sends or holds it."""
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    if body.get("stream") is True:
        raise invalid("stream: the halfrate emulator does not support streaming responses")
    problem = check_params(body, version, in_batch=False)
    if problem:
        raise invalid(problem)
    with emulator.lock:
        now = emulator.clock.now()
        plan = plan_prompt(body)
        keys = [key for _, key in plan.prefixes]
        live = {
            key
            for source in ("batch", MESSAGES_SOURCE)
            for key, (_, written, expires) in emulator.store.cache_rows(keys, source).items()
            if written <= now < expires
        }
        usage = account(plan, min_cacheable_tokens(body["model"]), live.__contains__)
        entries = [
            (p.key, MESSAGES_SOURCE, None, now, now + TTL_SECONDS[p.ttl], TTL_SECONDS[p.ttl])
            for p in usage.writes
        ]
        emulator.store.put_cache(entries)
        if usage.read_key:
            emulator.store.refresh_cache(
                [(now, usage.read_key, s) for s in ("batch", MESSAGES_SOURCE)]
            )
        answer = respond(body, new_id("seed"), usage, "standard")
        tokens = (answer["usage"]["input_tokens"], answer["usage"]["output_tokens"])
        emulator.store.add_message_audit(message_digest(body), body["model"], tokens, now, held)
    return answer


def count_tokens(body: Any) -> dict[str, int]:
    """The `input_tokens` the prompt would use (same estimate as the responder's usage)."""
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    for key in ("model", "messages"):
        if key not in body:
            raise invalid(f"{key}: Field required")
    if not isinstance(body["model"], str) or not is_known_model(body["model"]):
        raise invalid(f"model: {body['model']}")
    if not isinstance(body["messages"], list):
        raise invalid("messages: Input should be a valid list")
    return {"input_tokens": plan_prompt(body).total_tokens}
