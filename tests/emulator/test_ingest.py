"""The bounded-memory create parser, including values cut by the window boundary."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from halfrate_emulator import fastsplit, ingest
from halfrate_emulator.errors import ApiError


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_parse_across_any_window_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(ingest, "_CHUNK", chunk)
    items = [
        {"custom_id": f"id-{i}", "params": {"text": 'é ü 漢字 \\" \n' * i, "n": i, "big": 2**70}}
        for i in range(40)
    ]
    spool = tmp_path / "body"
    spool.write_text(json.dumps({"requests": items}, indent=2, ensure_ascii=False))
    parsed = ingest.parse_body(spool, tmp_path, max_requests=100)
    assert parsed.count == 40
    lines = parsed.requests_path.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == items
    assert parsed.custom_ids_path.read_text().split() == [i["custom_id"] for i in items]


def test_multibyte_character_split_by_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "_CHUNK", 3)
    spool = tmp_path / "body"
    spool.write_bytes(orjson.dumps({"requests": [{"custom_id": "a", "params": {"t": "漢字漢字"}}]}))
    assert ingest.parse_body(spool, tmp_path, 10).count == 1


def test_whitespace_and_empty_object(tmp_path: Path) -> None:
    spool = tmp_path / "body"
    spool.write_text(' \n { "requests" :\t[ {"custom_id":"a","params":{}} ] } \n')
    assert ingest.parse_body(spool, tmp_path, 10).count == 1
    spool.write_text("{ }")
    with pytest.raises(ApiError, match="requests: Field required"):
        ingest.parse_body(spool, tmp_path, 10)


def test_deep_nesting_is_a_400_not_a_crash(tmp_path: Path) -> None:
    spool = tmp_path / "body"
    spool.write_text(
        '{"requests": [{"custom_id": "a", "params": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}]}"
    )
    with pytest.raises(ApiError):
        ingest.parse_body(spool, tmp_path, 10)


def test_fast_path_handles_nested_custom_id_objects(tmp_path: Path) -> None:
    nested = {"examples": [{"custom_id": "inner", "v": 1}, {"custom_id": "inner2"}], "x": "},{"}
    items = [{"custom_id": f"r{i}", "params": nested | {"i": i}} for i in range(5)]
    spool = tmp_path / "body"
    spool.write_bytes(orjson.dumps({"requests": items}))
    with (tmp_path / "out").open("wb") as out:
        sink = fastsplit.split_compact(spool, out, 10)
    assert sink is not None and sink.count == 5  # decided by the fast path
    parsed = ingest.parse_body(spool, tmp_path, max_requests=10)
    assert [orjson.loads(line) for line in parsed.requests_path.read_bytes().splitlines()] == items


@pytest.mark.parametrize(
    "body",
    [
        b'{"requests":[{"custom_id":"a","params":{}},{"custom_id":"a","params":{}}]}',
        b'{"requests":[{"custom_id":"a","params":{}},{"custom_id":"b","params":{}}] ',
        b'{"requests":[{"custom_id":"a","params":{"x":NaN}}]}',
        b'{"requests":[{"custom_id":"a","params":{"x":"\xff"}}]}',
        b'{"requests":[]}',
    ],
)
def test_fast_and_general_paths_agree(
    tmp_path: Path, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "body"
    spool.write_bytes(body)
    outcomes = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(ingest, "split_compact", lambda *args: None)
        try:
            outcomes.append(str(ingest.parse_body(spool, tmp_path, 10).count))
        except ApiError as err:
            outcomes.append(f"{err.status} {err.message}")
    assert outcomes[0] == outcomes[1]
