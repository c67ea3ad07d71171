"""Extract: every source type, every quarantine reason, every error, and resume."""

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from halfrate import extract_scan, extract_validate
from halfrate.config import JobConfig
from halfrate.extract import ExtractError, extract_rows
from halfrate.kinds.label import LabelJob
from halfrate.settings import Settings
from halfrate.workspace import JobPaths

EMAILS = Path("/work/shared/data/emails")  # real sample documents, outside the repo


def make_job(source: Path, **overrides: Any) -> JobConfig:
    fields: dict[str, Any] = {
        "name": "t",
        "source": source,
        "instructions": "Label the text.",
        "labels": ["a", "b"],
    }
    return LabelJob(**(fields | overrides))


@pytest.fixture
def paths(tmp_path: Path) -> JobPaths:
    return JobPaths(tmp_path / "job")


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def assert_no_outputs(paths: JobPaths) -> None:
    folder = paths.rows.parent
    assert not paths.rows.exists() and not paths.quarantine.exists()
    assert not (folder / "source.json").exists()
    assert not folder.exists() or not any(folder.iterdir())  # no temp files left either


def test_sample_csv_with_gold(samples: Path, paths: JobPaths) -> None:
    job = make_job(samples / "intents.csv", gold_column="intent")
    summary = extract_rows(job, paths, Settings())
    assert (summary.source_rows, summary.valid_rows, summary.quarantined_rows) == (693, 693, 0)
    assert not summary.reused and summary.reasons == {}
    rows = pl.read_parquet(paths.rows)
    assert rows.schema == pl.Schema(
        {"row_number": pl.UInt32, "row_id": pl.String, "text": pl.String, "gold": pl.String}
    )
    assert rows["row_number"].to_list() == list(range(1, 694))
    source = pl.read_csv(samples / "intents.csv", infer_schema=False)
    assert rows["row_id"].to_list() == source["id"].to_list()
    assert rows["gold"].to_list() == source["intent"].to_list()
    quarantine = pl.read_parquet(paths.quarantine)
    assert quarantine.height == 0
    assert quarantine.schema == pl.Schema(
        {"row_number": pl.UInt32, "row_id": pl.String, "reason": pl.String}
    )


def test_csv_keeps_ids_as_text_and_handles_bom(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", '\ufeffid,text\n007,"a, ""quoted""\nline"\n1e3,b\n')
    extract_rows(make_job(source), paths, Settings())
    rows = pl.read_parquet(paths.rows)
    assert rows["row_id"].to_list() == ["007", "1e3"]
    assert rows["text"].to_list() == ['a, "quoted"\nline', "b"]


def test_parquet_ids_are_cast_to_text(tmp_path: Path, paths: JobPaths) -> None:
    source = tmp_path / "in.parquet"
    pl.DataFrame({"key": [10, 20], "body": ["x", "y"], "other": [1.5, 2.5]}).write_parquet(source)
    extract_rows(make_job(source, id_column="key", text_column="body"), paths, Settings())
    rows = pl.read_parquet(paths.rows)
    assert rows.columns == ["row_number", "row_id", "text"]
    assert rows["row_id"].to_list() == ["10", "20"]


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_with_mixed_id_types(tmp_path: Path, paths: JobPaths, suffix: str) -> None:
    # Schema inference reads the first 100 lines; a string id after them must still work.
    lines = [f'{{"id": {i}, "text": "t{i}", "extra": {{"n": {i}}}}}' for i in range(150)]
    lines.append('{"id": "x-1", "text": "last"}')
    source = write(tmp_path, f"in{suffix}", "\n".join(lines) + "\n")
    summary = extract_rows(make_job(source), paths, Settings())
    assert summary.valid_rows == 151
    rows = pl.read_parquet(paths.rows)
    assert rows["row_id"][0] == "0" and rows["row_id"][-1] == "x-1"


def test_folder_of_documents(tmp_path: Path, paths: JobPaths) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    write(folder, "b.txt", "second")
    write(folder / "sub", "a b.txt", "nested")
    write(folder, "latin.txt", "caf\xe9".encode("latin-1"))
    write(folder, "bom.txt", "\ufeffhello".encode())
    write(folder, ".secret", "skip me")
    write(folder / ".hidden", "x.txt", "skip me too")
    write(folder, "empty.txt", "")
    summary = extract_rows(make_job(folder), paths, Settings())
    rows = pl.read_parquet(paths.rows)
    assert rows["row_id"].to_list() == ["b.txt", "bom.txt", "latin.txt", "sub/a b.txt"]
    assert rows["text"].to_list() == ["second", "hello", "café", "nested"]
    assert summary.reasons == {"missing text": 1}
    assert pl.read_parquet(paths.quarantine)["row_id"].to_list() == ["empty.txt"]


@pytest.mark.skipif(not EMAILS.is_dir(), reason="shared sample emails not available")
def test_real_email_folder(tmp_path: Path, paths: JobPaths) -> None:
    folder = shutil.copytree(EMAILS, tmp_path / "emails")
    summary = extract_rows(make_job(folder), paths, Settings())
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert summary.source_rows == len(names) > 100
    rows = pl.read_parquet(paths.rows)
    quarantined = pl.read_parquet(paths.quarantine).select("row_number", "row_id")
    every = pl.concat([rows.select("row_number", "row_id"), quarantined]).sort("row_number")
    assert every["row_id"].to_list() == names
    first = rows.row(0, named=True)
    assert first["text"] == (folder / first["row_id"]).read_text(encoding="utf-8")


def test_every_quarantine_reason(tmp_path: Path, paths: JobPaths) -> None:
    source = write(
        tmp_path,
        "in.csv",
        "id,text\n"
        "a,fine\n"  # 1
        ",no id\n"  # 2
        "d,first\n"  # 3
        "b,   \n"  # 4 blank text
        "d,second\n"  # 5
        "c,\n"  # 6 missing text
        "e,0123456789ABC\n"  # 7 too long (13 > 10)
        "d,third\n"  # 8
        "   ,also no id\n",  # 9
    )
    summary = extract_rows(make_job(source), paths, Settings(max_text_chars=10))
    assert (summary.source_rows, summary.valid_rows, summary.quarantined_rows) == (9, 1, 8)
    assert summary.reasons == {
        "duplicate id": 3,
        "missing id": 2,
        "missing text": 2,
        "text too long": 1,
    }
    assert pl.read_parquet(paths.rows)["row_id"].to_list() == ["a"]
    q = {r["row_number"]: r for r in pl.read_parquet(paths.quarantine).iter_rows(named=True)}
    assert sorted(q) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert q[2]["row_id"] is None and q[2]["reason"].startswith("missing id")
    assert q[9]["row_id"] == "   " and "'id'" in q[9]["reason"]
    assert q[3]["reason"] == q[8]["reason"] == "duplicate id 'd' in rows 3, 5, 8"
    assert q[4]["reason"].startswith("missing text") and q[6]["reason"].startswith("missing text")
    assert q[7]["reason"] == "text too long: 13 characters, the limit is 10"


def test_row_with_two_problems_gets_both_reasons(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", "id,text\nx,\nx,ok\ny,ok\n")
    summary = extract_rows(make_job(source), paths, Settings())
    reasons = pl.read_parquet(paths.quarantine)["reason"].to_list()
    assert (
        reasons[0] == "duplicate id 'x' in rows 1, 2; missing text: column 'text' is empty or blank"
    )
    assert summary.reasons == {"duplicate id": 2, "missing text": 1}


def test_many_duplicates_are_summarised(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", "id,text\n" + "same,t\n" * 25 + "other,t\n")
    extract_rows(make_job(source), paths, Settings())
    reason = pl.read_parquet(paths.quarantine)["reason"][0]
    assert reason == "duplicate id 'same' in rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 15 more"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("in.txt", "id,text\n1,a\n", "unsupported file type '.txt'"),
        ("in.csv", "", "the file is empty"),
        ("in.csv", "id,text\n", "the file has no rows"),
        ("in.jsonl", "", "the file is empty"),
        ("in.csv", "id,body\n1,a\n", "column(s) 'text' not found; available columns: id, body"),
        ("in.csv", 'id,text\n1,"abc\n2,def\n', "could not read it as CSV"),
        ("in.csv", "id,text\n1,a,b,c\n", "could not read it as CSV"),
        ("in.csv", b"id,text\n1,caf\xe9\n", "is not UTF-8: convert it"),
        ("in.jsonl", '{"id": 1, "text": "a"}\n{"id": 2, "text": \n', "line 2, column 19: not"),
        ("in.jsonl", '{"id": 1, "text": "a"}\n\n{"id": 2, text: 1}\n', "line 3, column 11: not"),
        ("in.jsonl", '{"id": 1, "text": "a"}\n[2, "b"]\n', "line 2: a JSON list, not an object"),
        ("in.parquet", "not parquet at all", "could not read it as Parquet"),
    ],
)
def test_bad_sources_are_clear_errors(
    tmp_path: Path, paths: JobPaths, name: str, content: str | bytes, expected: str
) -> None:
    source = write(tmp_path, name, content)
    with pytest.raises(ExtractError) as err:
        extract_rows(make_job(source), paths, Settings())
    assert str(source) in str(err.value) and expected in str(err.value)
    assert_no_outputs(paths)


def test_missing_source_and_gold_column(tmp_path: Path, paths: JobPaths) -> None:
    with pytest.raises(ExtractError, match=r"nope\.csv: source not found"):
        extract_rows(make_job(tmp_path / "nope.csv"), paths, Settings())
    source = write(tmp_path, "in.csv", "id,text\n1,a\n")
    with pytest.raises(ExtractError, match=r"'label' not found; available columns: id, text"):
        extract_rows(make_job(source, gold_column="label"), paths, Settings())
    assert_no_outputs(paths)


def test_folder_errors(tmp_path: Path, paths: JobPaths) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder, ".only-hidden", "x")
    with pytest.raises(ExtractError, match=r"has no .* files"):
        extract_rows(make_job(folder), paths, Settings())
    write(folder, "a.txt", "x")
    with pytest.raises(
        ExtractError,
        match=r"only the columns path, text, email_from_name, .*, so column 'g' \(gold\)",
    ):
        extract_rows(make_job(folder, gold_column="g"), paths, Settings())
    assert_no_outputs(paths)


def test_rerun_reuses_and_changed_source_is_refused(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", "id,text\n1,a\n2,b\n2,c\n")
    first = extract_rows(make_job(source), paths, Settings())
    stamp = paths.rows.stat().st_mtime_ns
    again = extract_rows(make_job(source), paths, Settings())
    assert again.reused and again.model_dump(exclude={"reused"}) == first.model_dump(
        exclude={"reused"}
    )
    assert paths.rows.stat().st_mtime_ns == stamp
    with pytest.raises(ExtractError, match="max_text_chars=400000, now 5"):
        extract_rows(make_job(source), paths, Settings(max_text_chars=5))
    write(tmp_path, "in.csv", "id,text\n1,a\n2,b\n3,c\n")
    with pytest.raises(ExtractError, match=r"source changed since .* --restart"):
        extract_rows(make_job(source), paths, Settings())


def test_extract_is_redone_when_outputs_were_lost(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", "id,text\n1,a\n")
    extract_rows(make_job(source), paths, Settings())
    before = pl.read_parquet(paths.rows)
    paths.rows.unlink()
    summary = extract_rows(make_job(source), paths, Settings())
    assert not summary.reused and pl.read_parquet(paths.rows).equals(before)


def test_changed_folder_is_refused(tmp_path: Path, paths: JobPaths) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder, "a.txt", "x")
    extract_rows(make_job(folder), paths, Settings())
    write(folder, "b.txt", "y")
    with pytest.raises(ExtractError, match="source changed"):
        extract_rows(make_job(folder), paths, Settings())


def test_parquet_read_in_small_batches_keeps_row_numbers(
    tmp_path: Path, paths: JobPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract_validate, "BATCH_BYTES", 1)  # one row per batch
    source = tmp_path / "in.parquet"
    frame = pl.DataFrame(
        {"id": ["a", "b", "a", "c", "d"], "text": ["1", "2", "3", None, "5"], "g": list("vwxyz")}
    )
    frame.write_parquet(source)
    summary = extract_rows(make_job(source, gold_column="g"), paths, Settings())
    assert summary.reasons == {"duplicate id": 2, "missing text": 1}
    rows = pl.read_parquet(paths.rows)
    assert rows.rows() == [(2, "b", "2", "w"), (5, "d", "5", "z")]
    assert rows.schema["row_number"] == pl.UInt32
    assert pl.read_parquet(paths.quarantine)["row_number"].to_list() == [1, 3, 4]


# ---- issue 8: every input gets a clear answer ------------------------------------------------


def test_ids_differing_only_in_surrounding_spaces_are_one_duplicated_id(
    tmp_path: Path, paths: JobPaths
) -> None:
    source = write(tmp_path, "in.csv", 'id,text\na,one\n" a",two\nb,three\n"b ",four\nc,five\n')
    summary = extract_rows(make_job(source), paths, Settings())
    assert pl.read_parquet(paths.rows)["row_id"].to_list() == ["c"]
    q = pl.read_parquet(paths.quarantine)
    assert q["row_number"].to_list() == [1, 2, 3, 4]
    assert q["row_id"].to_list() == ["a", " a", "b", "b "]  # kept as the source spells them
    assert q["reason"][0] == (
        "duplicate id 'a' in rows 1, 2 (ids that differ only in surrounding spaces are the same id)"
    )
    assert summary.reasons == {"duplicate id": 4}


def test_ids_differing_only_in_case_are_different_rows(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", "id,text\nAbc,one\nabc,two\nABC,three\n")
    summary = extract_rows(make_job(source), paths, Settings())
    assert summary.quarantined_rows == 0
    assert pl.read_parquet(paths.rows)["row_id"].to_list() == ["Abc", "abc", "ABC"]


def test_csv_with_a_bom_and_crlf_line_ends(tmp_path: Path, paths: JobPaths) -> None:
    source = write(tmp_path, "in.csv", b'\xef\xbb\xbfid,text\r\na,hello\r\nb,"two\r\nlines"\r\n')
    extract_rows(make_job(source), paths, Settings())
    rows = pl.read_parquet(paths.rows)
    assert rows["row_id"].to_list() == ["a", "b"]  # the BOM is not part of the header
    assert rows["text"].to_list() == ["hello", "two\r\nlines"]  # no stray \r on a value


def test_folder_files_say_what_is_wrong_with_them(tmp_path: Path, paths: JobPaths) -> None:
    """An empty file is reported as an empty file, not as "column 'text' is empty"; a text
    file holding binary data is quarantined, never sent as latin-1 noise, and so is a file of
    an unknown type; each is named by its path."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder, "ok.txt", "hello")
    write(folder, "empty.txt", "")
    write(folder, "blank.txt", "  \n\t")
    write(folder, "notes.txt", "UTF-16 text".encode("utf-16"))
    write(folder, "dump.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    write(folder, "blob.bin", bytes(range(256)))
    summary = extract_rows(make_job(folder), paths, Settings())
    assert pl.read_parquet(paths.rows)["row_id"].to_list() == ["ok.txt"]
    reasons = dict(pl.read_parquet(paths.quarantine).select("row_id", "reason").iter_rows())
    assert reasons["empty.txt"].startswith("empty file: it has no text; remove it")
    assert reasons["blank.txt"].startswith("blank file: it holds only whitespace")
    for name in ("notes.txt", "dump.md"):
        assert reasons[name].startswith("not text: the file holds NUL bytes")
    assert reasons["blob.bin"].startswith("unsupported file type '.bin': a folder source takes")
    assert summary.reasons == {"missing text": 2, "not text": 2, "unusable document": 1}


def test_a_request_over_max_batch_bytes_is_quarantined_and_the_rest_kept(
    tmp_path: Path, paths: JobPaths
) -> None:
    """One oversized row used to abort the whole build (BuildError) after extract."""
    from halfrate.build import build_requests
    from halfrate.ledger import Ledger

    huge = "word " * 600
    source = write(tmp_path, "in.csv", f"id,text\nsmall,hello\nhuge-row,{huge}\nlast,bye\n")
    settings = Settings(max_batch_bytes=2_000)
    job = make_job(source)
    summary = extract_rows(job, paths, settings)
    assert summary.reasons == {"request too large": 1}
    assert pl.read_parquet(paths.rows)["row_id"].to_list() == ["small", "last"]
    [(number, row_id, reason)] = pl.read_parquet(paths.quarantine).iter_rows()
    assert (number, row_id) == (2, "huge-row")
    size = int(reason.split(": ")[1].split(" bytes")[0].replace(",", ""))
    assert reason.endswith(
        "bytes as a batch body, over HALFRATE_MAX_BATCH_BYTES=2,000; shorten the text (or the "
        "instructions), or raise the limit"
    )
    # the size is the row's request alone as a batch body, with its longest custom_id
    alone = tmp_path / "alone.parquet"
    pl.DataFrame({"row_id": ["huge-row"], "text": [huge]}).write_parquet(alone)
    other = JobPaths(tmp_path / "other")
    [built] = build_requests(
        job, other, Ledger.create(other.ledger), 1, alone, Settings(), prime=False
    )
    assert size == built.body_bytes + len("a10xxxx_") - len("a1_")
    files = build_requests(
        job, paths, Ledger.create(paths.ledger), 1, paths.rows, settings, prime=False
    )
    assert sum(f.n_requests for f in files) == 2  # the rest is built


def test_instructions_too_large_for_any_request_are_an_error(
    tmp_path: Path, paths: JobPaths
) -> None:
    source = write(tmp_path, "in.csv", "id,text\na,hello\n")
    job = make_job(source, instructions="x" * 3_000)
    with pytest.raises(ExtractError, match=r"every request of this job is at least [\d,]+ bytes"):
        extract_rows(job, paths, Settings(max_batch_bytes=2_000))
    assert_no_outputs(paths)


def test_requests_are_not_measured_when_no_row_can_be_too_large(tmp_path: Path) -> None:
    """Under the default limit a text row's request cannot exceed it: no per-row JSON sizing."""
    from halfrate.kinds import kind_of

    job = make_job(tmp_path / "in.csv")
    contents = kind_of(job).user_contents(job, job.template)
    assert extract_scan.size_check(job, contents, Settings()) is None
    assert extract_scan.size_check(job, contents, Settings(max_batch_bytes=100_000)) is not None


def test_a_lower_batch_limit_on_a_reused_extract_is_refused_only_when_it_matters(
    tmp_path: Path, paths: JobPaths
) -> None:
    source = write(tmp_path, "in.csv", "id,text\na,hello\n")
    extract_rows(make_job(source), paths, Settings(max_batch_bytes=100_000))
    assert extract_rows(make_job(source), paths, Settings(max_batch_bytes=200_000)).reused
    with pytest.raises(ExtractError, match="HALFRATE_MAX_BATCH_BYTES=100000, now 50000"):
        extract_rows(make_job(source), paths, Settings(max_batch_bytes=50_000))
    other = JobPaths(tmp_path / "other")
    extract_rows(make_job(source), other, Settings(max_batch_bytes=50_000_000))
    lower = Settings(max_batch_bytes=10_000_000)  # lower, but max_text_chars keeps rows below
    assert extract_rows(make_job(source), other, lower).reused


def test_source_columns_reads_only_the_header(tmp_path: Path) -> None:
    from halfrate.sources import source_columns

    source = write(tmp_path, "in.csv", "id,text,gold\n" + "1,a,b\n" * 3)
    assert source_columns(source) == (["id", "text", "gold"], False)
    folder = tmp_path / "docs"
    folder.mkdir()
    with pytest.raises(ExtractError, match=r"has no .* files"):
        source_columns(folder)
    write(folder, "a.txt", "x")
    columns, folder_source = source_columns(folder)  # the e-mail headers are columns too
    assert columns[:3] == ["path", "text", "email_from_name"] and folder_source
    with pytest.raises(ExtractError, match="source not found"):
        source_columns(tmp_path / "nope.parquet")
