"""Create-body intake: spool the upload to disk, then parse it item by item in bounded memory.

A 256 MB body is never held in memory: the upload is written to a spool file while bytes are
counted, and the parser slides a text window over that file, decoding one request at a time with
the stdlib JSON scanner (C speed) and writing each one out as a compact line.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from halfrate_emulator.errors import ApiError, invalid
from halfrate_emulator.fastsplit import split_compact
from halfrate_emulator.items import ItemSink, ParsedBody

_WS = re.compile(r"[ \t\n\r]*")
_CHUNK = 4 * 1024 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def too_large() -> ApiError:
    """The API's 413 (answered by Cloudflare in production)."""
    return ApiError(413, "Request exceeds the maximum allowed number of bytes.")


def malformed() -> ApiError:
    """The 400 for a body that is not valid JSON."""
    return invalid("There was an error parsing the body of your request: invalid JSON.")


async def spool_body(chunks: AsyncIterator[bytes], path: Path, limit: int) -> int:
    """Write the streamed body to `path`, counting bytes; 413 as soon as it passes `limit`."""
    size = 0
    with path.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large()
            out.write(chunk)
    return size


class _Window:
    """A sliding window of decoded text over a binary file."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self) -> None:
        """Drop consumed text and read more; doubling keeps one huge item linear."""
        data = self._source.read(max(_CHUNK, len(self.buf) - self.pos))
        text = self._decoder.decode(data, final=not data)
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        self.eof = not data

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the body)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self.fill()

    def expect(self, char: str) -> None:
        """Consume `char` (after whitespace) or fail as malformed JSON."""
        if self.peek() != char:
            raise malformed()
        self.pos += 1

    def value(self) -> Any:
        """Decode the next JSON value; a value cut by the window end is retried after a fill."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except ValueError:
                if self.eof:
                    raise malformed() from None
            else:
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return obj
            self.fill()


class _BodyParser:
    """The general parser: `{"requests": [...]}` from a window, one item at a time."""

    def __init__(self, window: _Window, sink: ItemSink) -> None:
        self.win = window
        self.sink = sink

    def parse(self) -> None:
        """Parse the whole body; raises the first problem once the JSON proved well-formed."""
        if self.win.peek() != "{":
            self.win.value()  # malformed JSON wins over a wrong type, as with pydantic
            raise invalid("Input should be a valid dictionary")
        self.win.pos += 1
        first, seen_requests = True, False
        while self.win.peek() != "}":
            if not first:
                self.win.expect(",")
            first = False
            key = self.win.value()
            self.win.expect(":")
            if key == "requests" and not seen_requests:
                self._requests()
            else:
                self.win.value()
                self.sink.note(invalid(f"{key}: Extra inputs are not permitted"))
            seen_requests = seen_requests or key == "requests"
        self.win.pos += 1
        if self.win.peek() != "":
            raise malformed()
        if not seen_requests:
            self.sink.note(invalid("requests: Field required"))
            raise self.sink.problem  # type: ignore[misc]
        self.sink.finish()

    def _requests(self) -> None:
        if self.win.peek() != "[":
            self.win.value()
            self.sink.note(invalid("requests: Input should be a valid list"))
            self.sink.count = 1  # not an empty list: only the type problem applies
            return
        self.win.pos += 1
        while self.win.peek() != "]":
            if self.sink.count:
                self.win.expect(",")
            self.sink.add(self.win.value())
        self.win.pos += 1


def parse_body(spool: Path, out_dir: Path, max_requests: int) -> ParsedBody:
    """Validate the spooled create body and write `requests.jsonl` and `custom_ids.txt`.

    The fast path (compact bodies, the common case) is tried first; anything it cannot vouch
    for is parsed again by the general parser, which also produces the precise error.

    Raises:
        ApiError: 400 with a pydantic-path message for anything the API rejects synchronously.
    """
    requests_path = out_dir / "requests.jsonl"
    with requests_path.open("wb", buffering=1 << 20) as out:
        sink = split_compact(spool, out, max_requests)
        if sink is None:
            out.seek(0)
            out.truncate()
            sink = ItemSink(out, max_requests)
            _parse_general(spool, sink)
    custom_ids_path = out_dir / "custom_ids.txt"
    custom_ids_path.write_text("".join(f"{cid}\n" for cid in sink.custom_ids))
    return ParsedBody(sink.count, requests_path, custom_ids_path)


def _parse_general(spool: Path, sink: ItemSink) -> None:
    with spool.open("rb") as source:
        try:
            _BodyParser(_Window(source), sink).parse()
        except UnicodeDecodeError:
            raise invalid("The request body is not valid UTF-8.") from None
        except RecursionError:
            raise malformed() from None
