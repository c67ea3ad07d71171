"""The fast path for compact create bodies: split items on a byte pattern, parse with orjson.

In JSON text a `"` inside a string is always escaped, so the bytes `,{"custom_id"` can only be
structure: the start of an object whose first key is `custom_id`. Such objects may also occur
nested inside params; a split there yields a prefix of an object, which never parses, and the
slice is simply extended to the next candidate. Only a slice that orjson accepts becomes an
item, and each is written out verbatim (no re-serialisation). Anything unusual (whitespace
layout, other key order, invalid UTF-8, NaN, huge integers, ...) returns None and the general
parser takes over, so this path never decides an error on its own.
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path
from typing import IO

import orjson

from halfrate_emulator.items import ItemSink

_HEAD = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"requests"[ \t\r\n]*:[ \t\r\n]*\[[ \t\r\n]*')
_TAIL = re.compile(rb"[ \t\r\n]*\][ \t\r\n]*\}[ \t\r\n]*\Z")
_SEPARATOR = b',{"custom_id"'
_RELEASE_EVERY = 32 * 1024 * 1024


def split_compact(spool: Path, out: IO[bytes], max_requests: int) -> ItemSink | None:
    """Parse the body at `spool` into `out`, or return None if the general parser must."""
    size = spool.stat().st_size
    if size == 0:
        return None
    with spool.open("rb") as source, mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as view:
        head = _HEAD.match(view)
        tail = _TAIL.search(view, max(0, size - 64))
        if head is None or tail is None or head.end() >= tail.start():
            return None
        sink = ItemSink(out, max_requests)
        return sink if _split(view, head.end(), tail.start(), sink) else None


def _split(view: mmap.mmap, start: int, stop: int, sink: ItemSink) -> bool:
    """Feed every item between `start` and `stop` to `sink`; False if the path must give up."""
    released = 0
    search = start
    while start < stop:
        found = view.find(_SEPARATOR, search, stop)
        end = stop if found == -1 else found
        try:
            item = orjson.loads(view[start:end])
        except orjson.JSONDecodeError:
            if found == -1:
                return False
            search = found + 1  # a nested match: extend the slice to the next candidate
            continue
        sink.add(item, view[start:end])
        start = search = end + 1
        if start - released > _RELEASE_EVERY:  # keep the mapped body out of our RSS
            view.madvise(mmap.MADV_DONTNEED, released, (start - released) & ~(mmap.PAGESIZE - 1))
            released += (start - released) & ~(mmap.PAGESIZE - 1)
    sink.finish()
    return True
