"""Build requests: custom_ids, request shape, file splitting, priming, and idempotent rebuilds."""

import hashlib
import json
import random
import re
from itertools import pairwise
from pathlib import Path
from typing import Any, Required, get_origin, get_type_hints

import polars as pl
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages.batch_create_params import Request

from halfrate import build
from halfrate.build import BuildError, build_requests, custom_id_for, custom_ids_for, request_for
from halfrate.config import JobConfig
from halfrate.extract import extract_rows
from halfrate.kinds.label import LabelJob
from halfrate.ledger import Ledger, RequestFile
from halfrate.settings import Settings
from halfrate.workspace import JobPaths

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TRICKY = [
    'She said "hi" \\ then left',
    "line one\nline two\r\n\ttabbed",
    "control \x00\x01\x1f and \x7f",
    "Zoë, José, Łukasz, Dvořák — 日本語 😀 \u2028\u2029",
    "</script> & <b>",
]


def make_job(source: Path, **overrides: Any) -> JobConfig:
    fields: dict[str, Any] = {
        "name": "t",
        "source": source,
        "instructions": 'Label the text. Use "billing" for money matters.\nBe brief.',
        "labels": ["billing", "access", "other"],
    }
    return LabelJob(**(fields | overrides))


@pytest.fixture
def paths(tmp_path: Path) -> JobPaths:
    return JobPaths(tmp_path / "job")


@pytest.fixture
def ledger(paths: JobPaths) -> Ledger:
    return Ledger.create(paths.ledger)


def rows_file(tmp_path: Path, row_ids: list[str], texts: list[str] | None = None) -> Path:
    path = tmp_path / "rows.parquet"
    texts = texts if texts is not None else [f"text of {r}" for r in row_ids]
    pl.DataFrame({"row_id": row_ids, "text": texts}).write_parquet(path)
    return path


def lines_of(paths: JobPaths, file: RequestFile) -> list[bytes]:
    data = (paths.root / file.path).read_bytes()
    assert data.endswith(b"\n") and b"\n\n" not in data and b"\r\n" not in data.replace(b"\\r", b"")
    return data.split(b"\n")[:-1]


def body_of(paths: JobPaths, file: RequestFile) -> bytes:
    return b'{"requests":[' + b",".join(lines_of(paths, file)) + b"]}"


def typed_dict_keys(typed_dict: Any) -> tuple[set[str], set[str]]:
    """(required, all) keys of an SDK TypedDict (its annotations are strings, so resolve them)."""
    hints = get_type_hints(typed_dict, include_extras=True)
    required = {k for k, v in hints.items() if get_origin(v) is Required}
    return required, set(hints)


def test_custom_id_rules() -> None:
    assert custom_id_for("u0001", 1) == "a1_u0001"
    assert custom_id_for("A-b_9", 12) == "a12_A-b_9"
    plain = "x" * 56
    assert custom_id_for(plain, 3) == f"a3_{plain}"
    for row_id in ["x" * 57, "a.b", "with space", "naïve", "日本", "sub/a b.txt", "", "a\nb"]:
        custom_id = custom_id_for(row_id, 10)
        digest = hashlib.blake2b(row_id.encode(), digest_size=12).hexdigest()
        assert custom_id == f"a10_h{digest}"
        assert CUSTOM_ID.match(custom_id) and len(custom_id) <= 64
    assert custom_id_for("a.b", 1) != custom_id_for("a.c", 1)
    assert custom_id_for("a.b", 1)[3:] == custom_id_for("a.b", 2)[3:]  # stable across attempts


def test_vectorised_custom_ids_match_the_rule() -> None:
    import pyarrow as pa

    row_ids = ["u1", "a.b", "x" * 56, "x" * 57, "日本", "ok-id_2", "abc\n", "\nabc", ""]
    got = custom_ids_for(pa.array(row_ids), 4).to_pylist()
    assert got == [custom_id_for(r, 4) for r in row_ids]


def test_sample_rows_match_the_reference_request(
    samples: Path, paths: JobPaths, ledger: Ledger
) -> None:
    job = make_job(samples / "intents.csv", gold_column="intent")
    extract_rows(job, paths, Settings())
    files = build_requests(job, paths, ledger, 1, paths.rows, Settings(), prime=False)
    assert [(f.path, f.part, f.purpose, f.n_requests) for f in files] == [
        ("requests/a1/part-0001.jsonl", 1, "main", 693)
    ]
    rows = pl.read_parquet(paths.rows)
    lines = lines_of(paths, files[0])
    for line, (row_id, text) in zip(lines, rows.select("row_id", "text").iter_rows(), strict=True):
        reference = request_for(job, custom_id_for(row_id, 1), text)
        assert json.loads(line) == reference
        assert line == json.dumps(reference, ensure_ascii=False, separators=(",", ":")).encode()
    index = pl.read_parquet(paths.index_file(files[0].path))
    assert index.schema == pl.Schema(
        {"custom_id": pl.String, "row_id": pl.String, "attempt": pl.UInt8}
    )
    assert index["row_id"].to_list() == rows["row_id"].to_list()
    assert index["custom_id"].to_list() == [json.loads(x)["custom_id"] for x in lines]
    assert set(index["attempt"]) == {1}


def test_tricky_texts_are_byte_identical_to_json_dumps(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    row_ids = [f"r{i}" for i in range(len(TRICKY))]
    job = make_job(tmp_path / "unused.csv", cache_ttl="5m")
    files = build_requests(
        job, paths, ledger, 1, rows_file(tmp_path, row_ids, TRICKY), Settings(), prime=False
    )
    for line, row_id, text in zip(lines_of(paths, files[0]), row_ids, TRICKY, strict=True):
        reference = request_for(job, f"a1_{row_id}", text)
        assert line == json.dumps(reference, ensure_ascii=False, separators=(",", ":")).encode()
        assert json.loads(line)["params"]["messages"][0]["content"] == text


def test_request_shape_follows_the_sdk_types(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    job = make_job(tmp_path / "unused.csv")
    files = build_requests(job, paths, ledger, 1, rows_file(tmp_path, ["a"]), Settings(), False)
    request = json.loads(lines_of(paths, files[0])[0])
    required, allowed = typed_dict_keys(Request)
    assert required <= request.keys() <= allowed
    required, allowed = typed_dict_keys(MessageCreateParamsNonStreaming)
    params = request["params"]
    assert required == {"model", "max_tokens", "messages"}
    assert required <= params.keys() <= allowed
    assert params["system"] == [
        {
            "type": "text",
            "text": job.instructions,
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    assert params["messages"] == [{"role": "user", "content": "text of a"}]
    assert params["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {"label": {"type": "string", "enum": job.labels}},
                "required": ["label"],
                "additionalProperties": False,
            },
        }
    }
    assert (params["model"], params["max_tokens"]) == (job.model, job.max_tokens)


def test_no_cache_control_when_caching_is_off(tmp_path: Path) -> None:
    params = request_for(make_job(tmp_path / "x.csv", cache_ttl="none"), "a1_x", "t")["params"]
    assert params["system"] == [{"type": "text", "text": make_job(tmp_path).instructions}]


@pytest.mark.parametrize("read_rows", [4096, 5])  # 5: files are cut inside Arrow batches
def test_split_by_count(
    tmp_path: Path,
    paths: JobPaths,
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    read_rows: int,
) -> None:
    monkeypatch.setattr(build, "READ_BATCH_ROWS", read_rows)
    row_ids = [f"r{i:02d}" for i in range(30)]
    settings = Settings(max_requests_per_batch=7)
    files = build_requests(
        make_job(tmp_path), paths, ledger, 1, rows_file(tmp_path, row_ids), settings, False
    )
    assert [f.n_requests for f in files] == [7, 7, 7, 7, 2]
    assert [f.part for f in files] == [1, 2, 3, 4, 5]
    assert files[4].path == "requests/a1/part-0005.jsonl"
    sent = []
    for f in files:
        lines = lines_of(paths, f)
        index = pl.read_parquet(paths.index_file(f.path))
        assert index["custom_id"].to_list() == [json.loads(x)["custom_id"] for x in lines]
        sent += index["row_id"].to_list()
        assert f.body_bytes == len(body_of(paths, f))
        assert f.sha256 == hashlib.sha256((paths.root / f.path).read_bytes()).hexdigest()
    assert sent == row_ids


@pytest.mark.parametrize("read_rows", [4096, 3])
def test_split_by_body_bytes(
    tmp_path: Path,
    paths: JobPaths,
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    read_rows: int,
) -> None:
    monkeypatch.setattr(build, "READ_BATCH_ROWS", read_rows)
    row_ids = [f"r{i}" for i in range(40)]
    texts = [("word " * (i % 7 * 10)) + TRICKY[i % len(TRICKY)] for i in range(40)]
    settings = Settings(max_batch_bytes=2_000)
    files = build_requests(
        make_job(tmp_path), paths, ledger, 1, rows_file(tmp_path, row_ids, texts), settings, False
    )
    assert len(files) > 3
    bodies = [body_of(paths, f) for f in files]
    for f, body in zip(files, bodies, strict=True):
        assert f.body_bytes == len(body) <= 2_000
        assert [r["custom_id"] for r in json.loads(body)["requests"]] == pl.read_parquet(
            paths.index_file(f.path)
        )["custom_id"].to_list()
    for f, after in pairwise(files):  # greedy: the next line did not fit
        first_next = lines_of(paths, after)[0]
        assert f.body_bytes + 1 + len(first_next) > 2_000
    assert sum(f.n_requests for f in files) == 40


def test_request_larger_than_the_body_limit(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    rows = rows_file(tmp_path, ["small", "huge"], ["ok", "x" * 3_000])
    with pytest.raises(
        BuildError, match=r"row 'huge': its request is [\d,]+ bytes .* over max_batch_bytes=2,000"
    ):
        build_requests(
            make_job(tmp_path), paths, ledger, 1, rows, Settings(max_batch_bytes=2_000), False
        )
    assert ledger.records() == []
    assert not any(
        p.suffix == ".jsonl" or p.name.endswith(".tmp") for p in paths.requests_dir(1).iterdir()
    )


def test_prime_file_holds_the_first_row(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    row_ids = [f"r{i}" for i in range(5)]
    settings = Settings(max_requests_per_batch=3)
    files = build_requests(
        make_job(tmp_path), paths, ledger, 1, rows_file(tmp_path, row_ids), settings, True
    )
    assert [(f.path, f.part, f.purpose, f.n_requests) for f in files] == [
        ("requests/a1/prime.jsonl", 0, "prime", 1),
        ("requests/a1/part-0001.jsonl", 1, "main", 3),
        ("requests/a1/part-0002.jsonl", 2, "main", 1),
    ]
    assert json.loads(lines_of(paths, files[0])[0])["custom_id"] == "a1_r0"
    assert pl.read_parquet(paths.index_file(files[0].path))["row_id"].to_list() == ["r0"]
    assert [r.file for r in ledger.records(attempt=1)] == files


@pytest.mark.parametrize(("rows", "ttl"), [(["only"], "1h"), (["a", "b"], "none")])
def test_no_prime_for_one_row_or_without_cache(
    tmp_path: Path, paths: JobPaths, ledger: Ledger, rows: list[str], ttl: str
) -> None:
    job = make_job(tmp_path, cache_ttl=ttl)
    files = build_requests(job, paths, ledger, 1, rows_file(tmp_path, rows), Settings(), True)
    assert [f.purpose for f in files] == ["main"]


def test_rebuild_is_idempotent(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    rows = rows_file(tmp_path, [f"r{i}" for i in range(10)])
    job = make_job(tmp_path)
    files = build_requests(job, paths, ledger, 1, rows, Settings(max_requests_per_batch=4), True)
    stamps = {f.path: (paths.root / f.path).stat().st_mtime_ns for f in files}
    again = build_requests(job, paths, ledger, 1, rows, Settings(max_requests_per_batch=9), True)
    assert again == files
    assert stamps == {f.path: (paths.root / f.path).stat().st_mtime_ns for f in files}


def test_crash_before_the_ledger_commit_rebuilds_the_same_bytes(
    tmp_path: Path, paths: JobPaths, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = rows_file(tmp_path, [f"r{i}" for i in range(10)])
    job = make_job(tmp_path)
    settings = Settings(max_requests_per_batch=3)

    def crash(files: list[RequestFile]) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ledger, "add_request_files", crash)
        with pytest.raises(KeyboardInterrupt):
            build_requests(job, paths, ledger, 1, rows, settings, True)
    crashed = {p.name: p.read_bytes() for p in paths.requests_dir(1).iterdir()}
    (paths.requests_dir(1) / "part-0009.jsonl").write_text("stale\n")  # from an older crash
    (paths.requests_dir(1) / ".part-0001.jsonl.tmp").write_text("half")
    files = build_requests(job, paths, ledger, 1, rows, settings, True)
    assert {p.name: p.read_bytes() for p in paths.requests_dir(1).iterdir()} == crashed
    assert [r.file for r in ledger.records()] == files


def test_retry_attempt_from_a_todo_file(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    todo = paths.todo_file(2)
    todo.parent.mkdir(parents=True)
    pl.DataFrame(
        {"row_id": ["x.1", "y"], "text": ["a", "b"], "why": ["expired", "overloaded"]}
    ).write_parquet(todo)
    files = build_requests(make_job(tmp_path), paths, ledger, 2, todo, Settings(), True)
    assert [f.path for f in files] == ["requests/a2/prime.jsonl", "requests/a2/part-0001.jsonl"]
    index = pl.read_parquet(paths.index_file(files[1].path))
    assert index.row(0) == ("a2_y", "y", 2)
    assert todo.exists()


def test_duplicate_row_ids_are_refused(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    rows = rows_file(tmp_path, ["a", "b", "a", "c.1", "c.1"])
    with pytest.raises(
        BuildError, match=r"4 rows share a custom_id \(row ids 'a', 'a', 'c.1', 'c.1'\)"
    ):
        build_requests(make_job(tmp_path), paths, ledger, 1, rows, Settings(), False)
    assert ledger.records() == []
    assert list(paths.requests_dir(1).iterdir()) == []


def test_bad_rows_files(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    job = make_job(tmp_path)
    missing_text = tmp_path / "no_text.parquet"
    pl.DataFrame({"row_id": ["a"], "body": ["x"]}).write_parquet(missing_text)
    with pytest.raises(BuildError, match=r"no_text\.parquet: missing column\(s\) \['text'\]"):
        build_requests(job, paths, ledger, 1, missing_text, Settings(), False)
    null_text = tmp_path / "null_text.parquet"
    pl.DataFrame({"row_id": ["a", "b"], "text": ["x", None]}).write_parquet(null_text)
    with pytest.raises(BuildError, match="row id 'b': text is null"):
        build_requests(job, paths, ledger, 1, null_text, Settings(), False)
    with pytest.raises(BuildError, match=r"nope\.parquet: cannot read the rows file"):
        build_requests(job, paths, ledger, 1, tmp_path / "nope.parquet", Settings(), False)
    assert ledger.records() == []


def test_no_rows_builds_no_files(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    files = build_requests(
        make_job(tmp_path), paths, ledger, 1, rows_file(tmp_path, []), Settings(), True
    )
    assert files == [] and list(paths.requests_dir(1).iterdir()) == []


def test_a_body_exactly_at_the_limit_fits(tmp_path: Path, paths: JobPaths, ledger: Ledger) -> None:
    rows = rows_file(tmp_path, [f"r{i}" for i in range(6)], ["y" * 600] * 6)
    job = make_job(tmp_path)
    one = build_requests(
        job, paths, Ledger.create(tmp_path / "probe.sqlite"), 9, rows, Settings(), False
    )
    line_bytes = (one[0].body_bytes - 14) // 6
    settings = Settings(max_batch_bytes=2 * line_bytes + 14)
    files = build_requests(job, paths, ledger, 1, rows, settings, False)
    assert [(f.n_requests, f.body_bytes) for f in files] == [(2, settings.max_batch_bytes)] * 3


def test_random_unicode_texts_match_json_dumps(
    tmp_path: Path, paths: JobPaths, ledger: Ledger
) -> None:
    rng = random.Random(5)
    alphabet = [chr(c) for c in [*range(0, 0x250), *range(0x2000, 0x2030), 0xFEFF, 0x1F600]]
    texts = ["".join(rng.choices(alphabet, k=rng.randint(1, 80))) for _ in range(300)]
    row_ids = [f"r{i}" for i in range(300)]
    job = make_job(tmp_path, instructions='Tag it: naïve «quotes» \\ "and" \u2028 done.')
    files = build_requests(
        job, paths, ledger, 1, rows_file(tmp_path, row_ids, texts), Settings(), prime=False
    )
    for line, row_id, text in zip(lines_of(paths, files[0]), row_ids, texts, strict=True):
        reference = request_for(job, f"a1_{row_id}", text)
        assert line == json.dumps(reference, ensure_ascii=False, separators=(",", ":")).encode()
