"""Synthetic bench data with fixed seeds: prose rows (~1,545 chars) and ~3,960-char instructions.

The text mixes quotes, newlines, tabs and accented names so that JSON escaping does real work.
"""

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "out"
TARGET_CHARS = 1545
INSTRUCTIONS_CHARS = 3960

NAMES = [
    "Zoë", "José", "Françoise", "Søren", "Łukasz", "Müller", "Ångström", "Núñez", "Chloé",
    "Björn", "Dvořák", "İsmail", "Renée", "Gödel", "Đorđe", "Siobhán", "Ibrahim", "Mei",
]  # fmt: skip
_PROSE = (
    "the order arrived late and the box was damaged so I would like a refund or a replacement "
    "please check my account because the invoice shows a charge twice this month our team "
    "needs access to the shared drive before the meeting on Friday morning can you confirm "
    "whether the flight is still on schedule I cannot log in after the update and the app "
    "keeps crashing when I open settings thanks for the quick help yesterday it worked"
)
WORDS = _PROSE.split(" ")


def label_job(**keys: Any) -> Any:
    """A label job's config, on this code or on code from before kinds (bench --baseline)."""
    try:
        from halfrate.kinds.label import LabelJob
    except ImportError:  # before job kinds were plug-ins
        from halfrate.config import JobConfig as LabelJob  # type: ignore[assignment]
    return LabelJob(**keys)


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 22))
    words[0] = words[0].capitalize()
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(NAMES))
    body = " ".join(words)
    roll = rng.random()
    if roll < 0.2:
        body = f'{rng.choice(NAMES)} said "{body}."'
    elif roll < 0.3:
        body = f"{body} (ref: C:\\tickets\\{rng.randint(1000, 9999)})\t—"
    end = "\n\n" if rng.random() < 0.15 else " "
    return body + rng.choice([".", "!", "?"]) + end


def sentence_pool(seed: int = 7, size: int = 20_000) -> list[str]:
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(size)]


def make_instructions(seed: int = 11) -> str:
    """A ~3,960-char system prompt, as a real labelling job would carry."""
    rng = random.Random(seed)
    text = "You label customer messages. Read the message and answer with one label.\n"
    while len(text) < INSTRUCTIONS_CHARS:
        text += _sentence(rng)
    return text[:INSTRUCTIONS_CHARS]


def make_docs(n: int, path: Path | None = None, seed: int = 42) -> Path:
    """Write `n` rows (id, text) to Parquet, reusing the file if it already exists."""
    path = path or OUT / f"docs-{n}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    pool = sentence_pool()
    per_doc = round(TARGET_CHARS / (sum(map(len, pool)) / len(pool)))
    rng = random.Random(seed)
    schema = pa.schema([("row_id", pa.string()), ("text", pa.string())])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for start in range(0, n, 50_000):
            ids = [f"doc-{i:07d}" for i in range(start, min(n, start + 50_000))]
            texts = ["".join(rng.choices(pool, k=per_doc)).strip() for _ in ids]
            writer.write_table(pa.table({"row_id": ids, "text": texts}, schema=schema))
    tmp.rename(path)
    return path


def make_docs_csv(n: int) -> Path:
    """The same rows as `make_docs(n)`, as a CSV file (header row_id,text)."""
    path = OUT / f"docs-{n}.csv"
    if path.exists():
        return path
    source = pq.ParquetFile(make_docs(n))
    tmp = path.with_suffix(".tmp")
    with pcsv.CSVWriter(tmp, source.schema_arrow) as writer:
        for batch in source.iter_batches(batch_size=8192):
            writer.write_batch(batch)
    tmp.rename(path)
    return path


def make_titled_docs(n: int) -> Path:
    """The rows of `make_docs(n)` split in two columns: title (the first ~80 chars) and body.

    The same characters as the one-column file, so a two-column prompt template sends what the
    one-column job sends plus the template's few literal characters.
    """
    path = OUT / f"titled-{n}.parquet"
    if path.exists():
        return path
    source = pq.ParquetFile(make_docs(n))
    schema = pa.schema([("row_id", pa.string()), ("title", pa.string()), ("body", pa.string())])
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in source.iter_batches(batch_size=50_000):
            texts = batch.column("text").to_pylist()
            titles, bodies = [t[:80] for t in texts], [t[80:] for t in texts]
            columns = [batch.column("row_id"), pa.array(titles), pa.array(bodies)]
            writer.write_table(pa.table(columns, schema=schema))
    tmp.rename(path)
    return path
