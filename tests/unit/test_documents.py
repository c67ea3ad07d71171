"""Folder sources with documents: PDFs and images as base64 blocks, checked per file."""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from halfrate import documents
from halfrate.build import build_requests, request_for
from halfrate.config import JobConfig, parse_job
from halfrate.documents import (
    content_blocks,
    content_blocks_bytes,
    email_columns,
    image_size,
    image_tokens,
    read_file,
)
from halfrate.extract import extract_rows
from halfrate.ledger import Ledger
from halfrate.settings import Settings
from halfrate.workspace import JobPaths
from tests.media import pdf_bytes, png_bytes

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}}
EMAILS = Path(__file__).resolve().parents[2] / "data" / "samples" / "emails"


def extract_job(source: Path, **keys: Any) -> JobConfig:
    base = {
        "name": "docs",
        "kind": "extract",
        "source": str(source),
        "instructions": "Read it.",
        "schema": SCHEMA,
    }
    return parse_job(base | keys)


def test_a_pdf_becomes_a_base64_document_block(tmp_path: Path) -> None:
    data = pdf_bytes(pages=3)
    (tmp_path / "report.pdf").write_bytes(data)
    row = read_file("report.pdf", tmp_path / "report.pdf")
    assert row["doc_block"] == "document" and row["doc_media_type"] == "application/pdf"
    assert base64.b64decode(row["doc_data"]) == data
    assert row["doc_tokens"] == 3 * documents.PDF_PAGE_TOKENS and row["doc_problem"] is None
    assert row["text"] is None


def test_a_png_becomes_an_image_block_with_its_size_and_tokens(tmp_path: Path) -> None:
    data = png_bytes(1000, 500)
    (tmp_path / "chart.png").write_bytes(data)
    row = read_file("chart.png", tmp_path / "chart.png")
    assert (row["doc_block"], row["doc_media_type"]) == ("image", "image/png")
    assert base64.b64decode(row["doc_data"]) == data
    assert image_size(data, "image/png") == (1000, 500)
    assert row["doc_tokens"] == image_tokens((1000, 500)) == 667  # 1000 x 500 / 750
    assert image_tokens((4000, 4000)) == 1534  # scaled to 1.15 MP first
    (tmp_path / "photo.jpg").write_bytes(data)  # a PNG named .jpg: sent as what it is
    assert read_file("photo.jpg", tmp_path / "photo.jpg")["doc_media_type"] == "image/png"


def test_content_blocks_are_the_json_of_the_blocks() -> None:
    frame = pl.DataFrame(
        {
            "doc_block": ["document", "image", None],
            "doc_media_type": ["application/pdf", "image/png", None],
            "doc_data": ["JVBERi0=", "iVBORw==", None],
            "text": [None, 'Caption: "x"\n', "only text é"],
        }
    )
    made = frame.select(content_blocks(pl.col("text"))).to_series().to_list()
    expected = [
        [
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            }
        ],
        [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
            },
            {"type": "text", "text": 'Caption: "x"\n'},
        ],
        [{"type": "text", "text": "only text é"}],
    ]
    assert made == [orjson.dumps(blocks).decode() for blocks in expected]
    # measured without the data (extract's size check never reads a document's base64)
    frame = frame.with_columns(doc_bytes=pl.col("doc_data").str.len_bytes())
    sizes = frame.drop("doc_data").select(content_blocks_bytes(pl.col("text"))).to_series()
    assert sizes.to_list() == [len(m.encode()) for m in made]


def test_a_text_file_of_binary_data_is_staged_without_text(tmp_path: Path) -> None:
    """A NUL byte in the first 8 KiB: binary (or UTF-16), quarantined as "not text" by
    extract, never sent as Latin-1 noise; an e-mail of it has no headers either."""
    for name in ("utf16.txt", "mail.eml"):
        (tmp_path / name).write_bytes("From: a@b.c\n\nhi".encode("utf-16"))
        row = read_file(name, tmp_path / name)
        assert row["text"] is None and row["doc_problem"] is None and row["doc_block"] is None
        assert row["email_from_address"] is None
    (tmp_path / "late.txt").write_bytes(b"x" * 8192 + b"\x00")  # past the sniffed part
    assert read_file("late.txt", tmp_path / "late.txt")["text"] == "x" * 8192 + "\x00"


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("locked.pdf", lambda: pdf_bytes(password="secret"), "encrypted PDF: the API takes PDFs"),
        ("long.pdf", lambda: pdf_bytes(pages=101), "PDF of 101 pages: a request takes 100"),
        ("broken.pdf", lambda: b"%PDF-1.4\nnot really", "unreadable PDF ("),
        ("fake.png", lambda: b"GIF? no: plain text", "not an image: the bytes of fake.png"),
        ("notes.docx", lambda: b"PK\x03\x04", "unsupported file type '.docx': a folder source"),
        ("README", lambda: b"hello", "unsupported file type (no suffix)"),
        ("wide.png", lambda: png_bytes(8001, 1), "image of 8001 x 1 px: the API takes at most"),
    ],
)
def test_files_the_api_would_refuse_carry_their_reason(
    tmp_path: Path, name: str, make: Any, problem: str
) -> None:
    (tmp_path / name).write_bytes(make())
    row = read_file(name, tmp_path / name)
    assert row["doc_block"] is None and row["doc_data"] is None
    assert row["doc_problem"].startswith(problem), row["doc_problem"]


def test_oversized_files_are_refused_from_their_size_without_reading_them(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    with big.open("wb") as fh:  # a sparse 40 MB file: the size alone decides
        fh.write(pdf_bytes())
        fh.truncate(40_000_000)
    row = read_file("big.pdf", big)
    assert row["doc_problem"] == (
        "file too large: 40.0 MB is 53.3 MB base64-encoded and a request holds 32 MB; split it"
    )
    photo = tmp_path / "big.png"
    with photo.open("wb") as fh:
        fh.write(png_bytes())
        fh.truncate(4_000_000)
    assert read_file("big.png", photo)["doc_problem"].startswith(
        "file too large: 4.0 MB is 5.3 MB base64-encoded and an image may be 5 MB"
    )


def test_email_headers_as_pythons_email_package_reads_them() -> None:
    first = sorted(EMAILS.glob("*.eml"))[1]
    assert email_columns(first.read_bytes()) == {
        "email_from_name": "Owen Byrne",
        "email_from_address": "owen@permafrost.net",
        "email_subject": "The case for spam",
        "email_date": "2002-08-22T15:39:47Z",
        "email_list_id": "fork.xent.com",
        "email_is_reply": "false",
    }
    encoded = b"From: =?utf-8?q?Zo=C3=AB?= <z@x.org>\nSubject: Re: hi\nDate: nonsense\n\nbody"
    assert email_columns(encoded) | {"email_subject": None} == {
        "email_from_name": "Zoë",
        "email_from_address": "z@x.org",
        "email_subject": None,
        "email_date": None,
        "email_list_id": None,
        "email_is_reply": "true",
    }


def test_a_mixed_folder_sends_blocks_and_quarantines_what_cannot_go(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(pdf_bytes(pages=2))
    (folder / "b.png").write_bytes(png_bytes(30, 20))
    (folder / "c.txt").write_text("a plain note", encoding="utf-8")
    (folder / "d.eml").write_bytes((EMAILS / "easy-ham-1-00015.eml").read_bytes())
    (folder / "e.pdf").write_bytes(pdf_bytes(password="pw"))
    (folder / "f.xlsx").write_bytes(b"PK")
    paths = JobPaths(tmp_path / "job")
    job = extract_job(folder, gold_columns={"title": "email_subject"})
    summary = extract_rows(job, paths, Settings())

    assert (summary.valid_rows, summary.quarantined_rows) == (4, 2)
    assert summary.reasons == {"unusable document": 2}
    quarantine = pl.read_parquet(paths.quarantine)
    assert quarantine["row_id"].to_list() == ["e.pdf", "f.xlsx"]
    assert quarantine["reason"][0].startswith("encrypted PDF")
    rows = pl.read_parquet(paths.rows)
    assert rows.columns == ["row_number", "row_id", "content", "text", "doc_tokens", "gold"]
    content = [json.loads(c) for c in rows["content"]]
    assert [[b["type"] for b in blocks] for blocks in content] == [
        ["document"],
        ["image"],
        ["text"],
        ["text"],
    ]
    assert base64.b64decode(content[0][0]["source"]["data"]) == (folder / "a.pdf").read_bytes()
    assert content[2][0]["text"] == "a plain note" == rows["text"][2]
    assert rows["text"][0] == ""  # a PDF alone: no text, and the estimate counts none
    assert rows["doc_tokens"].to_list() == [2 * documents.PDF_PAGE_TOKENS, 1, 0, 0]
    gold = [json.loads(g) for g in rows["gold"]]
    assert gold[3] == {"title": "The case for spam"} and gold[0] == {"title": None}


def test_a_folder_of_text_files_sends_text_as_before(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# note", encoding="utf-8")
    paths = JobPaths(tmp_path / "job")
    extract_rows(extract_job(folder), paths, Settings())
    assert pl.read_parquet(paths.rows).columns == ["row_number", "row_id", "text"]


def test_a_document_too_large_for_a_batch_is_quarantined_by_its_request_size(
    tmp_path: Path,
) -> None:
    """A PDF whose request alone exceeds HALFRATE_MAX_BATCH_BYTES is quarantined by extract
    (the build would otherwise stop on it), measured as the build will send it."""
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "big.pdf").write_bytes(pdf_bytes(pages=1, pad=600_000))
    (folder / "small.pdf").write_bytes(pdf_bytes(pages=1))
    (folder / "note.txt").write_text("a short note", encoding="utf-8")
    job = extract_job(folder, prompt="Title of {path}?")
    paths = JobPaths(tmp_path / "job")
    summary = extract_rows(job, paths, Settings(max_batch_bytes=500_000))

    assert summary.reasons == {"request too large": 1}
    assert pl.read_parquet(paths.rows)["row_id"].to_list() == ["note.txt", "small.pdf"]
    [(number, row_id, reason)] = pl.read_parquet(paths.quarantine).iter_rows()
    assert (number, row_id) == (1, "big.pdf")
    assert reason.endswith("bytes as a batch body, over HALFRATE_MAX_BATCH_BYTES=500,000; "
                           "shorten the text (or the instructions), or raise the limit")  # fmt: skip
    size = int(reason.split(": ")[1].split(" bytes")[0].replace(",", ""))
    other = JobPaths(tmp_path / "other")  # the same row under the default limit, built alone
    extract_rows(job, other, Settings())
    alone = tmp_path / "alone.parquet"
    pl.read_parquet(other.rows).filter(pl.col("row_id") == "big.pdf").write_parquet(alone)
    [built] = build_requests(
        job, other, Ledger.create(other.ledger), 1, alone, Settings(), prime=False
    )
    assert size == built.body_bytes + len("a10xxxx_") - len("a1_")


def test_large_pdfs_split_into_request_files_by_their_exact_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "pdfs"
    folder.mkdir()
    for number in range(7):
        (folder / f"doc{number}.pdf").write_bytes(pdf_bytes(pages=1, pad=300_000 + number * 40_000))
    job = extract_job(folder, prompt="Title of {path}?")
    paths = JobPaths(tmp_path / "job")
    extract_rows(job, paths, Settings())
    settings = Settings(max_batch_bytes=1_100_000)
    ledger = Ledger.create(paths.ledger)
    files = build_requests(job, paths, ledger, 1, paths.rows, settings, prime=False)

    assert len(files) >= 3  # two or so of these PDFs fill a request body
    sent: dict[str, Any] = {}
    for f in files:
        body = (
            b'{"requests":['
            + (paths.root / f.path).read_bytes().rstrip(b"\n").replace(b"\n", b",")
            + b"]}"
        )
        assert f.body_bytes == len(body) <= 1_100_000
        assert f.sha256 == hashlib.sha256((paths.root / f.path).read_bytes()).hexdigest()
        for request in json.loads(body)["requests"]:
            sent[request["custom_id"]] = request
    assert len(sent) == 7
    by_row = {r["params"]["messages"][0]["content"][1]["text"]: r for r in sent.values()}
    for number in range(7):
        name = f"doc{number}.pdf"
        request = by_row[f"Title of {name}?"]
        data = (folder / name).read_bytes()
        blocks = [
            {
                "type": "document",
                "source": {
                    "type": "base64",
                    "media_type": "application/pdf",
                    "data": base64.b64encode(data).decode(),
                },
            },
            {"type": "text", "text": f"Title of {name}?"},
        ]
        assert request == request_for(job, request["custom_id"], blocks)
