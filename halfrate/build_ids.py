"""Request ids: a custom_id from a row id, attempt and request key; BuildError, the build's error."""

import hashlib
import re

import pyarrow as pa
import pyarrow.compute as pc

from halfrate.errors import ActionableError

RAW_KEY = re.compile(r"[A-Za-z0-9_-]{1,56}")
REQUEST_KEY = re.compile(r"[a-z]{0,4}")
HASH_BYTES = 12  # a long or unusual row id's custom_id key: "h" + 24 hex digits
CUSTOM_ID_PREFIX_BYTES = len("a10xxxx_")  # the longest: attempt 10, a 4-letter request key


class BuildError(ValueError, ActionableError):
    """Requests cannot be built; the message names the file or row and what to do."""


def custom_id_for(row_id: str, attempt: int, request: str = "") -> str:
    """The request's custom_id: the row id when it is short and plain, else a hash of it.

    `request` tells apart the requests of one row when a kind sends more than one per row
    (a few lowercase letters, e.g. "ab" and "ba"); it sits before the `_`, so no row id can
    make two requests share an id. The API allows 64 characters: "a10xxxx_" + 56.
    """
    if not REQUEST_KEY.fullmatch(request):
        raise BuildError(f"request key {request!r}: use up to 4 lowercase letters")
    key = row_id if RAW_KEY.fullmatch(row_id) else "h" + _hash_key(row_id)
    return f"a{attempt}{request}_{key}"


def _hash_key(row_id: str) -> str:
    return hashlib.blake2b(row_id.encode(), digest_size=HASH_BYTES).hexdigest()


def custom_ids_for(row_ids: pa.Array, attempt: int, request: str | pa.Array = "") -> pa.Array:
    """`custom_id_for` over an Arrow string array (the plain ids never leave Arrow).

    `request` is one key for every row, or an array of each row's key.
    """
    keys_used = [request] if isinstance(request, str) else pc.unique(request).to_pylist()
    for used in keys_used:
        if not isinstance(used, str) or not REQUEST_KEY.fullmatch(used):
            raise BuildError(f"request key {used!r}: use up to 4 lowercase letters")
    row_ids = row_ids.cast(pa.string())
    plain = pc.match_substring_regex(row_ids, f"^{RAW_KEY.pattern}$")
    keys = row_ids
    if not pc.all(plain).as_py():
        hashed = [
            None if p else "h" + _hash_key(r)
            for r, p in zip(row_ids.to_pylist(), plain.to_pylist(), strict=True)
        ]
        keys = pc.if_else(plain, row_ids, pa.array(hashed, pa.string()))
    if isinstance(request, str):
        return pc.binary_join_element_wise(f"a{attempt}{request}_", keys, "")
    return pc.binary_join_element_wise(f"a{attempt}", request.cast(pa.string()), "_", keys, "")
