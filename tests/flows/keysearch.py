"""Search files (and what they hide: base64, pickles, compression, DuckDB tables) for a secret."""

import base64
import binascii
import contextlib
import gzip
import json
import pickle
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")


def find_secret(roots: list[Path], secret: str) -> list[str]:
    """Where `secret` shows up under `roots`: as is, base64-encoded, pickled, compressed."""
    hits: list[str] = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            hits += [f"{path}: {where}" for where in _search(data, secret.encode(), depth=0)]
            if data.startswith(b"DUCK", 8) or path.suffix == ".duckdb":
                hits += [f"{path}: {where}" for where in _search_duckdb(path, secret)]
    return hits


def _search(data: bytes, secret: bytes, depth: int) -> Iterator[str]:
    if secret in data:
        yield "plain bytes" if depth == 0 else f"decoded (level {depth})"
        return
    if depth >= 3:
        return
    for decoded in _decodings(data):
        found = list(_search(decoded, secret, depth + 1))
        if found:
            yield from found
            return
        obj = _unpickle(decoded)
        if obj is not None and secret.decode() in _flatten(obj):
            yield f"unpickled object (level {depth + 1})"
            return


def _decodings(data: bytes) -> Iterator[bytes]:
    """Base64 runs (JSON-escaped newlines joined), whole-file JSON strings, compressed data."""
    text = data.replace(b"\\n", b"").replace(b"\\r", b"")
    candidates = [m.group() for m in _B64_RUN.finditer(re.sub(rb"[\r\n]", b"", text))]
    with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
        candidates += [s.encode() for s in _strings(json.loads(data))]
    for chunk in candidates:
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            yield from _attempt(decode, chunk + b"=" * (-len(chunk) % 4))
    for decompress in (zlib.decompress, gzip.decompress):
        yield from _attempt(decompress, data)


def _attempt(decode: Any, data: bytes) -> list[bytes]:
    try:
        return [decode(data)]
    except (binascii.Error, ValueError, zlib.error, OSError, EOFError):
        return []


def _unpickle(data: bytes) -> Any:
    if data[:1] != b"\x80":
        return None
    try:
        import cloudpickle

        return cloudpickle.loads(data)
    except Exception:
        try:
            return pickle.loads(data)
        except Exception:
            return None


def _flatten(obj: Any, depth: int = 0, seen: set[int] | None = None) -> str:
    """Every string reachable from an object (attributes, args, containers, bytes)."""
    seen = set() if seen is None else seen
    if depth > 12 or id(obj) in seen:
        return ""
    seen.add(id(obj))
    parts = [repr(obj)[:2000]]
    if isinstance(obj, bytes | bytearray):
        parts.append(bytes(obj).decode("utf-8", "replace"))
    elif isinstance(obj, dict):
        parts += [
            _flatten(k, depth + 1, seen) + _flatten(v, depth + 1, seen) for k, v in obj.items()
        ]
    elif isinstance(obj, list | tuple | set | frozenset):
        parts += [_flatten(v, depth + 1, seen) for v in obj]
    if isinstance(obj, BaseException):
        parts += [_flatten(a, depth + 1, seen) for a in obj.args]
        for linked in (obj.__cause__, obj.__context__):
            parts.append(_flatten(linked, depth + 1, seen))
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        parts.append(_flatten(attributes, depth + 1, seen))
    for name in getattr(type(obj), "__slots__", ()):
        parts.append(_flatten(getattr(obj, name, None), depth + 1, seen))
    return "\n".join(parts)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _search_duckdb(path: Path, secret: str) -> Iterator[str]:
    """DuckDB compresses strings on disk: read every table back as text."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return
    with con:
        tables = con.execute(
            "select table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            if secret in repr(con.execute(f'select * from "{table}"').fetchall()):
                yield f"table {table}"
