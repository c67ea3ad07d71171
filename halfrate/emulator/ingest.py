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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from halfrate.emulator.errors import ApiError, invalid

CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
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


@dataclass
class ParsedBody:
    """What the create endpoint needs after parsing: the count and the spooled item files."""

    count: int
    requests_path: Path
    custom_ids_path: Path


def _check_item(index: int, item: Any, seen: dict[str, int]) -> str:
    """Validate one `requests[index]` the way the API does synchronously; return its custom_id."""
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise invalid(f"{where}: Input should be a valid dictionary")
    for key in item:
        if key not in ("custom_id", "params"):
            raise invalid(f"{where}.{key}: Extra inputs are not permitted")
    custom_id = _check_custom_id(where, item)
    if "params" not in item:
        raise invalid(f"{where}.params: Field required")
    if not isinstance(item["params"], dict):
        raise invalid(f"{where}.params: Input should be a valid dictionary")
    if custom_id in seen:
        raise invalid(
            f"{where}.custom_id: Duplicate custom_id '{custom_id}' "
            f"(already used by requests.{seen[custom_id]}); custom_id must be unique"
        )
    seen[custom_id] = index
    return custom_id


def _check_custom_id(where: str, item: dict[str, Any]) -> str:
    if "custom_id" not in item:
        raise invalid(f"{where}.custom_id: Field required")
    value = item["custom_id"]
    if not isinstance(value, str):
        raise invalid(f"{where}.custom_id: Input should be a valid string")
    if not value:
        raise invalid(f"{where}.custom_id: String should have at least 1 character")
    if len(value) > 64:
        raise invalid(f"{where}.custom_id: String should have at most 64 characters")
    if not CUSTOM_ID_RE.match(value):
        raise invalid(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    return value


def _dump(item: Any) -> bytes:
    try:
        return orjson.dumps(item)
    except TypeError:  # integers beyond 64 bits: orjson refuses, stdlib copes
        return json.dumps(item, separators=(",", ":")).encode()


class _BodyParser:
    """Parses `{"requests": [...]}` from a window, writing each item as one compact line."""

    def __init__(self, window: _Window, max_requests: int, requests_out: IO[bytes]) -> None:
        self.win = window
        self.max_requests = max_requests
        self.requests_out = requests_out
        self.custom_ids: list[str] = []
        self.problem: ApiError | None = None  # reported once the JSON proves well-formed

    def parse(self) -> int:
        """Parse the whole body and return the number of requests."""
        if self.win.peek() != "{":
            self.win.value()  # malformed JSON wins over a wrong type, as with pydantic
            raise invalid("Input should be a valid dictionary")
        self.win.pos += 1
        count: int | None = None
        while self.win.peek() != "}":
            if count is not None:
                self.win.expect(",")
            key = self.win.value()
            self.win.expect(":")
            if key == "requests":
                count = self._requests()
            else:
                self.win.value()
                self.problem = self.problem or invalid(f"{key}: Extra inputs are not permitted")
                count = count or 0
        self.win.pos += 1
        if self.win.peek() != "":
            raise malformed()
        if self.problem is not None:
            raise self.problem
        if count is None:
            raise invalid("requests: Field required")
        return count

    def _keep(self, index: int, item: Any, seen: dict[str, int]) -> None:
        try:
            self.custom_ids.append(_check_item(index, item, seen))
        except ApiError as err:
            self.problem = err
        else:
            self.requests_out.write(_dump(item) + b"\n")

    def _requests(self) -> int:
        if self.win.peek() != "[":
            self.win.value()
            self.problem = self.problem or invalid("requests: Input should be a valid list")
            return 0
        self.win.pos += 1
        seen: dict[str, int] = {}
        count = 0
        while self.win.peek() != "]":
            if count:
                self.win.expect(",")
            item = self.win.value()
            if count < self.max_requests and self.problem is None:
                self._keep(count, item, seen)
            count += 1
        self.win.pos += 1
        if count == 0 and self.problem is None:
            self.problem = invalid(
                "requests: List should have at least 1 item after validation, not 0"
            )
        if count > self.max_requests:
            self.problem = invalid(
                f"requests: List should have at most {self.max_requests} items after "
                f"validation, not {count}"
            )
        return count


def parse_body(spool: Path, out_dir: Path, max_requests: int) -> ParsedBody:
    """Validate the spooled create body and write `requests.jsonl` and `custom_ids.txt`.

    Raises:
        ApiError: 400 with a pydantic-path message for anything the API rejects synchronously.
    """
    requests_path = out_dir / "requests.jsonl"
    custom_ids_path = out_dir / "custom_ids.txt"
    with spool.open("rb") as source, requests_path.open("wb") as out:
        parser = _BodyParser(_Window(source), max_requests, out)
        try:
            count = parser.parse()
        except UnicodeDecodeError:
            raise invalid("The request body is not valid UTF-8.") from None
        except RecursionError:
            raise malformed() from None
    custom_ids_path.write_text("".join(f"{cid}\n" for cid in parser.custom_ids))
    return ParsedBody(count, requests_path, custom_ids_path)
