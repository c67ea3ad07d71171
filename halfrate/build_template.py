"""The request line template: a job's request serialized once, each row's parts spliced in.

Each line is an `anthropic.types.messages.batch_create_params.Request`. The part of a line that is
the same for every row (model, cached instructions, output schema) is serialized once; each row
only splices in its custom_id and its JSON-encoded message (perf-baseline.md, section A), a whole
Arrow batch at a time.
"""

from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pyarrow as pa

from halfrate.build_ids import CUSTOM_ID_PREFIX_BYTES, HASH_BYTES, RAW_KEY, BuildError
from halfrate.config import JobConfig
from halfrate.kinds import kind_of

if TYPE_CHECKING:  # importing anthropic costs seconds; the types are only for checking
    from anthropic.types import MessageParam
    from anthropic.types.messages.batch_create_params import Request

BODY_OVERHEAD = len(b'{"requests":[') + len(b"]}") - 1  # body = file size + this
_CUSTOM_ID_SLOT = "\x00halfrate:custom_id\x00"
_TEXT_SLOT = "\x00halfrate:text\x00"


def request_for(job: JobConfig, custom_id: str, content: Any) -> "Request":
    """One batch request, as a plain dict (the reference the fast path must match)."""
    return {"custom_id": custom_id, "params": kind_of(job).params(job, content)}


class RequestTemplate:
    """The serialized request with two holes: the custom_id and the user message.

    `lines` fills them for a whole Arrow batch at once: Polars JSON-encodes the message
    `{"role":"user","content":<text>}` (byte-identical to orjson) and concatenates the constant
    parts around it, so no Python code runs per row. Rows whose content is already JSON
    (content blocks: rows.parquet's `content` column) are spliced in as they are.
    """

    def __init__(self, job: JobConfig) -> None:
        whole = orjson.dumps(request_for(job, _CUSTOM_ID_SLOT, _TEXT_SLOT))
        cid_slot, message_slot = orjson.dumps(_CUSTOM_ID_SLOT), orjson.dumps(_message(_TEXT_SLOT))
        if whole.count(cid_slot) != 1 or whole.count(message_slot) != 1:
            raise BuildError(
                f"kind {job.kind!r}: the request must hold the row's text once, as the "
                "user message, and the instructions must not contain NUL characters"
            )
        head, rest = whole.split(cid_slot)
        middle, tail = rest.split(message_slot)
        self.head, self.middle, self.tail = head + b'"', b'"' + middle, tail + b"\n"

    def lines(self, custom_ids: pa.Array, texts: pa.Array, blocks: bool = False) -> pa.Array:
        """The JSONL lines of a batch of rows, as one Arrow large_binary array.

        `texts` are the message texts, or with `blocks` the JSON of each message's content.
        """
        line = pl.concat_str(
            pl.lit(self.head.decode()),
            pl.col("custom_id"),
            pl.lit(self.middle.decode()),
            message_json(pl.col("text"), blocks),
            pl.lit(self.tail.decode()),
        )
        frame = pl.DataFrame({"custom_id": custom_ids, "text": texts})
        return frame.select(line).to_series().to_arrow().cast(pa.large_binary())

    def body_bytes(self, row_id: pl.Expr, message_bytes: pl.Expr) -> pl.Expr:
        """The body of a batch holding only this row's request, in bytes, at its largest (the
        custom_id of the last attempt, with a request key): what `max_batch_bytes` limits.

        `message_bytes` is the length of the user message's JSON (`message_json`).
        """
        plain = row_id.str.contains(f"^{RAW_KEY.pattern}$").fill_null(False)
        key = pl.when(plain).then(row_id.str.len_bytes()).otherwise(1 + 2 * HASH_BYTES)
        fixed = len(self.head) + len(self.middle) + len(self.tail) + BODY_OVERHEAD
        return key + (fixed + CUSTOM_ID_PREFIX_BYTES) + message_bytes

    def min_body_bytes(self) -> int:
        """The smallest body a request of this job can have (an empty one-character id)."""
        fixed = len(self.head) + len(self.middle) + len(self.tail) + BODY_OVERHEAD
        return fixed + CUSTOM_ID_PREFIX_BYTES + 1 + len(orjson.dumps(_message("")))


BLOCKS_MESSAGE_BYTES = len(b'{"role":"user","content":}')
"""What `message_json` adds around the JSON of content blocks, in bytes."""


def message_json(text: pl.Expr, blocks: bool = False) -> pl.Expr:
    """The user message's JSON, byte-identical to orjson: from the text, or with `blocks` from
    the JSON of its content blocks (spliced in as it is)."""
    if blocks:
        return pl.concat_str(pl.lit('{"role":"user","content":'), text, pl.lit("}"))
    return pl.struct(role=pl.lit("user"), content=text).struct.json_encode()


def _message(text: str) -> "MessageParam":
    return {"role": "user", "content": text}


def line_offsets(lines: pa.Array) -> list[int]:
    """Where each line starts in the array's data buffer (and where the last one ends)."""
    raw = memoryview(lines.buffers()[1]).cast("q")
    return raw[lines.offset : lines.offset + len(lines) + 1].tolist()
