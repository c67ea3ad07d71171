"""Validate the extracted rows and write them: rows.parquet, and the quarantine with reasons.

Extract computes small per-row facts (never holding the texts); the rules that turn them into
quarantine reasons are in halfrate/quarantine.py.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from halfrate import documents
from halfrate.config import JobConfig
from halfrate.documents import FOLDER_COLUMNS
from halfrate.extract_scan import Scanned
from halfrate.progress_hooks import SILENT, StepProgress, step
from halfrate.quarantine import Limits, quarantine_rows
from halfrate.settings import Settings
from halfrate.sources import ExtractError, unreadable

GOLD_FIELD = "gold."
"""A kind's extra column `gold.<field>` is one of several gold values, packed into `gold`."""
BATCH_BYTES = 8 << 20  # rows per batch when copying a Parquet source: about this many bytes
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


class ExtractSummary(BaseModel):
    """What extract found: counts, quarantine reasons, and whether earlier output was reused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_rows: int
    """Rows in the source (documents, for a folder)."""
    valid_rows: int
    """Rows written to extract/rows.parquet."""
    quarantined_rows: int
    """Rows written to extract/quarantine.parquet."""
    reasons: dict[str, int]
    """Quarantined rows per reason kind (a row with two problems counts under both)."""
    reused: bool = False
    """True when an earlier extract of the same unchanged source was reused."""


def _rows(frame: FrameT, scanned: Scanned, offset: int = 1) -> FrameT:
    """Our columns, in source order: row_number, row_id, text (the rendered prompt) or content
    (with its companions), the kind's extras (`gold.<field>` ones packed into one JSON `gold`).

    A kind that sends several requests per row gets one line per row and request, in key
    order, with the key in a `request` column after row_id.
    """
    extra: dict[str, str] = {k: c for k, c in scanned.extra.items() if not k.startswith(GOLD_FIELD)}
    gold = {k.removeprefix(GOLD_FIELD): c for k, c in scanned.extra.items() if k not in extra}
    fields = [pl.col(c).cast(pl.String).alias(k) for k, c in gold.items()]
    packed: list[pl.Expr] = [pl.struct(fields).struct.json_encode().alias("gold")] if gold else []
    extras: list[pl.Expr] = [
        *(expr.alias(name) for name, expr in scanned.made.companions.items()),
        *(pl.col(c).cast(pl.String).alias(name) for name, c in extra.items()),
        *packed,
    ]
    indexed = frame.with_row_index("row_number", offset=offset)
    row_id = pl.col(scanned.id_column).cast(pl.String).alias("row_id")
    contents = scanned.made.contents
    column = next(iter(contents.values())).column
    if list(contents) == [""]:
        return indexed.select("row_number", row_id, contents[""].expr.alias(column), *extras)
    keys = pl.concat_list([pl.lit(key, pl.String) for key in contents]).alias("request")
    texts = pl.concat_list([c.expr for c in contents.values()]).alias(column)
    return indexed.select("row_number", row_id, keys, texts, *extras).explode("request", column)


def validate_and_write(
    scanned: Scanned, job: JobConfig, settings: Settings, rows_tmp: Path, quarantine_tmp: Path
) -> ExtractSummary:
    name = job.source.name
    try:
        # Duplicate detection needs every id at once: this collects the id column and small
        # per-row facts (never the texts), then streams the valid rows straight to Parquet.
        with step(f"extract {name}: checking rows", _rows_in(scanned)) as progress:
            facts = _all_facts(scanned, progress)
        if facts.height == 0:
            raise ExtractError(f"{job.source}: the file has no rows; add rows below the header")
        limits = Limits(settings.max_text_chars, scanned.max_batch_bytes)
        quarantine = quarantine_rows(facts, scanned.id_column, scanned.template, limits)
        mean_chars = facts["text_chars"].mean()
        row_bytes = 64 + 2 * int(mean_chars if isinstance(mean_chars, float) else 0)
        group_rows = max(64, min(65_536, BATCH_BYTES // row_bytes))
        total = facts.height if scanned.parquet is not None else None
        with step(f"extract {name}: writing rows", total) as progress:
            _write_rows(scanned, quarantine["row_number"], rows_tmp, group_rows, progress)
    except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise unreadable(job.source, exc) from None
    quarantine.drop("kinds").write_parquet(quarantine_tmp)
    kinds = quarantine["kinds"].explode().value_counts(sort=True)
    return ExtractSummary(
        source_rows=facts.height,
        valid_rows=facts.height - quarantine.height,
        quarantined_rows=quarantine.height,
        reasons={k: int(n) for k, n in kinds.iter_rows()},
    )


def _all_facts(scanned: Scanned, progress: StepProgress) -> pl.DataFrame:
    """Every row's facts: Polars streams a CSV or JSON Lines source (no progress to tell),
    a Parquet source is read a batch at a time (each one reported)."""
    if scanned.parquet is None:
        return _facts(scanned.frame, scanned).collect(engine="streaming")
    batches = _parquet_batches(scanned, scanned.fact_columns, progress)
    return pl.concat([_facts(b, scanned, offset) for b, offset in batches], rechunk=True)


def _facts(frame: FrameT, scanned: Scanned, offset: int = 1) -> FrameT:
    """Small per-row facts for validation (never the texts themselves)."""
    row_id = pl.col(scanned.id_column).cast(pl.String)
    template = scanned.template
    facts = {
        "id_ok": row_id.str.contains(r"\S").fill_null(False),
        "text_ok": template.has_content(),
        "text_chars": template.chars(),
    }
    if scanned.source.folder:  # a PDF or image is content; an unusable file has its reason
        problem, block = pl.col("doc_problem"), documents.has_block()
        facts["text_ok"] = facts["text_ok"] | block | problem.is_not_null()
        facts["problem"] = problem
        # a text file that is not text (NUL bytes) was staged with a null text, no reason
        facts["binary"] = pl.col(FOLDER_COLUMNS[1]).is_null() & ~block & problem.is_null()
    if scanned.requests is not None:
        key = row_id.fill_null("")
        sizes = [scanned.requests.body_bytes(key, size) for size in scanned.made.message_bytes]
        facts["body_bytes"] = pl.max_horizontal(sizes)
    return frame.with_row_index("row_number", offset=offset).select(
        "row_number", row_id.alias("row_id"), **facts
    )


def _rows_in(scanned: Scanned) -> int | None:
    """A Parquet source's row count (from its footer); None for the others."""
    if scanned.parquet is None:
        return None
    return int(pq.ParquetFile(scanned.parquet).metadata.num_rows)


def _parquet_batches(
    scanned: Scanned, columns: list[str] | None = None, progress: StepProgress = SILENT
) -> Iterator[tuple[pl.DataFrame, int]]:
    """The Parquet source's wanted columns as frames of a few MB each, with their first row number.

    Polars' streaming Parquet reader reads far ahead (a 1.4 GB peak measured for 1M rows of
    1.5 KB); pyarrow's batch reader holds one batch at a time.
    """
    assert scanned.parquet is not None
    source = pq.ParquetFile(scanned.parquet, pre_buffer=False, buffer_size=1 << 20)
    meta = source.metadata
    row_bytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    batch_rows = max(1, min(16_384, BATCH_BYTES * max(meta.num_rows, 1) // max(row_bytes, 1)))
    offset = 1
    for batch in source.iter_batches(batch_size=batch_rows, columns=columns or scanned.wanted):
        progress.advance(batch.num_rows)
        yield pl.DataFrame(batch), offset
        offset += batch.num_rows


def _write_rows(
    scanned: Scanned,
    bad: pl.Series,
    target: Path,
    group_rows: int,
    progress: StepProgress = SILENT,
) -> None:
    """Write the source rows whose row_number is not in `bad`, streaming.

    The sink buffers a whole row group, so row groups are sized to ~8 MB: with Polars'
    default a 1M-row CSV of 1.5 KB texts peaked at 1.2 GB, with this at ~0.5 GB.
    """
    keep = ~pl.col("row_number").is_in(bad.implode())
    if scanned.parquet is None:
        _rows(scanned.frame, scanned).filter(keep).sink_parquet(target, row_group_size=group_rows)
        return
    schema = _rows(scanned.frame, scanned).head(0).collect().to_arrow().schema
    with pq.ParquetWriter(target, schema) as writer:
        for frame, offset in _parquet_batches(scanned, progress=progress):
            rows = _rows(frame, scanned, offset).filter(keep)
            writer.write_table(rows.to_arrow().cast(schema))
