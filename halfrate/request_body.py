"""A request file as the create body, streamed from disk, and the checks made before it is sent.

`batches.create(requests=[...])` builds the whole body in Python (~1.4 GiB per 256 MB batch;
shared/reference/anthropic-batches.md section 9). The gateway's `create_from_file` streams the
pre-built JSONL file as the body instead, in 1 MiB blocks, with an exact Content-Length
(perf-baseline.md section B).
"""

from collections.abc import Iterator
from pathlib import Path

BLOCK_SIZE = 1 << 20
BODY_PREFIX = b'{"requests":['
BODY_SUFFIX = b"]}"


class RequestFileError(ValueError):
    """A request file is not a well-formed JSONL body (checked before anything is sent)."""


def body_size(file_size: int) -> int:
    """Bytes of the create body built from a request file of `file_size` bytes."""
    return len(BODY_PREFIX) + (file_size - 1) + len(BODY_SUFFIX)


class RequestBody:
    """A request file as a create body: `{"requests":[` + lines joined by `,` + `]}`.

    Re-iterable (each iteration reopens the file) and streamed in blocks: memory stays at
    one block whatever the file size. The file must end with LF and hold no blank line.
    """

    def __init__(self, path: Path, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.block_size = block_size
        self.file_size = path.stat().st_size
        self.size = body_size(self.file_size)

    def __iter__(self) -> Iterator[bytes]:
        yield BODY_PREFIX
        remaining = self.file_size
        previous_ended_line = True  # a file starting with LF starts with a blank line
        with self.path.open("rb") as fh:
            while remaining > 0:
                block = fh.read(min(self.block_size, remaining))
                if not block:
                    raise RequestFileError(f"{self.path}: file shrank while it was being sent")
                remaining -= len(block)
                if b"\n\n" in block or (previous_ended_line and block[:1] == b"\n"):
                    raise RequestFileError(
                        f"{self.path}: blank line in a request file; rebuild the requests"
                    )
                previous_ended_line = block[-1:] == b"\n"
                if remaining == 0:
                    block = block[:-1]  # the final LF, checked in check_request_file
                yield block.replace(b"\n", b",")
        yield BODY_SUFFIX


def check_request_file(path: Path, body_bytes: int) -> None:
    """Cheap checks before a request file is sent: it exists, is unchanged in size, ends in LF."""
    if not path.is_file():
        raise RequestFileError(f"{path}: request file is missing; rebuild the requests")
    size = path.stat().st_size
    if size < 2:
        raise RequestFileError(f"{path}: request file is empty; rebuild the requests")
    if body_size(size) != body_bytes:
        raise RequestFileError(
            f"{path}: the file is {size} bytes, which makes a {body_size(size)}-byte body, but "
            f"the ledger registered a {body_bytes}-byte body: the file changed after it was "
            "built; rebuild the requests"
        )
    with path.open("rb") as fh:
        first = fh.read(1)
        fh.seek(-1, 2)
        last = fh.read(1)
    if first != b"{" or last != b"\n":
        raise RequestFileError(
            f"{path}: not a JSONL request file (it must start with '{{' and end with a newline)"
        )
