"""Extract: read the job's source with Polars, keep valid rows, quarantine the rest with a reason.

Writes extract/rows.parquet (row_number, row_id, text, and the kind's extra columns such as
label's gold) and extract/quarantine.parquet (row_number, row_id, reason), then
extract/source.json (the source fingerprint and the summary) as the commit point. `text` is
the job's prompt template rendered over the source's columns (halfrate/template.py), so it is
exactly what each request sends. A rerun against an unchanged source reuses the files; a changed source is
an error, because requests already built from the old rows must never mix with new ones.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from halfrate import documents
from halfrate.chain import upstream_fingerprint, write_upstream_rows
from halfrate.config import JobConfig
from halfrate.kinds import kind_of
from halfrate.kinds.base import UserContent
from halfrate.settings import Settings
from halfrate.sources import ExtractError, Source, scan_source, source_fingerprint, unreadable
from halfrate.template import PromptTemplate
from halfrate.workspace import JobPaths, write_atomic

__all__ = ["ExtractError", "ExtractSummary", "extract_rows", "source_fingerprint"]

log = logging.getLogger(__name__)

DUPLICATE_ROWS_SHOWN = 10
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


def extract_rows(job: JobConfig, paths: JobPaths, settings: Settings) -> ExtractSummary:
    """Extract the job's source into rows.parquet and quarantine.parquet (or reuse them).

    Args:
        job: The job; its `source`, `id_column`, prompt (or `text_column`) and its kind's
            extra columns (label: `gold_column`) are used.
        paths: The job folder.
        settings: `max_text_chars` is the longest text kept.

    Returns:
        Row counts and quarantine reasons.

    Raises:
        ExtractError: The source is missing, unsupported, empty, lacks a column (or a
            column the prompt names), cannot be parsed, or changed since this job first
            extracted it.
    """
    source = job.source
    fingerprint = _fingerprint(job, settings)
    state_file = paths.rows.parent / "source.json"
    if state_file.exists():
        state = orjson.loads(state_file.read_bytes())
        _check_same_source(source, state, fingerprint, settings)
        if paths.rows.exists() and paths.quarantine.exists():
            log.info("extract: reusing %s (source unchanged)", paths.rows)
            return ExtractSummary.model_validate(state["summary"] | {"reused": True})
    with _temp_files(paths) as (rows_tmp, quarantine_tmp, docs_tmp):
        if job.upstream is not None:  # another job's outputs, staged like documents
            write_upstream_rows(job.upstream, settings, docs_tmp)
        scanned = _scan_source(job, docs_tmp)
        summary = _validate_and_write(scanned, job, settings, rows_tmp, quarantine_tmp)
        if _fingerprint(job, settings) != fingerprint:
            raise ExtractError(f"{source}: the source changed while it was being read; rerun")
        finals = [(rows_tmp, paths.rows), (quarantine_tmp, paths.quarantine)]
        if job.upstream is not None:  # kept: what the rows were read from (for export)
            finals.append((docs_tmp, paths.upstream_rows))
        for tmp, final in finals:
            _fsync(tmp)  # source.json below vouches for these files: they must be on disk
            os.replace(tmp, final)
    state = {
        "source": str(source),
        "fingerprint": fingerprint,
        "max_text_chars": settings.max_text_chars,
        "summary": summary.model_dump(exclude={"reused"}),
    }
    write_atomic(state_file, orjson.dumps(state, option=orjson.OPT_INDENT_2))
    log.info("extract: %d rows valid, %d quarantined", summary.valid_rows, summary.quarantined_rows)
    return summary


def _fingerprint(job: JobConfig, settings: Settings) -> dict[str, Any]:
    """The source's identity: a file's or folder's content, or a job source's upstream."""
    if job.upstream is not None:
        return upstream_fingerprint(job.upstream, settings)
    return source_fingerprint(job.source)


def _check_same_source(
    source: Path, state: dict[str, Any], fingerprint: dict[str, Any], settings: Settings
) -> None:
    if state["fingerprint"] != fingerprint and fingerprint.get("kind") == "job":
        raise ExtractError(
            f"{source}: that job's outputs changed since this job first read them (it was "
            "rerun with new batches); rerun this job with --restart to judge the new outputs, "
            "or give it a new name"
        )
    if state["fingerprint"] != fingerprint:
        raise ExtractError(
            f"{source}: the source changed since this job first extracted it; rerun with "
            "--restart to start the job over, or give the job a new name"
        )
    if state["max_text_chars"] != settings.max_text_chars:
        raise ExtractError(
            f"{source}: this job was extracted with max_text_chars={state['max_text_chars']}, "
            f"now {settings.max_text_chars}; restore the setting, or rerun with --restart"
        )


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextmanager
def _temp_files(paths: JobPaths) -> Iterator[tuple[Path, Path, Path]]:
    folder = paths.rows.parent
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    temps = tuple(folder / f".{name}.{pid}.tmp" for name in ("rows", "quarantine", "docs"))
    try:
        yield temps[0], temps[1], temps[2]
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Scanned:
    """The source's frame and how each of our columns is made from its columns."""

    source: Source
    id_column: str
    template: PromptTemplate
    extra: dict[str, str]
    """The kind's extra columns: our name -> the source's column (e.g. gold)."""
    contents: dict[str, UserContent]
    """What each row sends per request key (one key, "", unless the kind sends several
    requests per row): the rendered template, unless the kind builds content blocks."""
    companions: dict[str, pl.Expr]
    """Columns rows.parquet carries beside content blocks made from a folder's documents: the
    text part and the documents' estimated tokens (for the cost estimate)."""

    @property
    def frame(self) -> pl.LazyFrame:
        return self.source.frame

    @property
    def parquet(self) -> Path | None:
        return self.source.parquet

    @property
    def wanted(self) -> list[str]:
        """The source columns the job reads."""
        columns = [self.id_column, *self.template.source_columns, *self.extra.values()]
        if self.source.folder:
            columns += documents.DOCUMENT_COLUMNS
        return list(dict.fromkeys(columns))

    @property
    def fact_columns(self) -> list[str]:
        """The source columns validation reads (a document's data is not one of them)."""
        return [c for c in self.wanted if c != "doc_data"]


def _scan_source(job: JobConfig, docs_tmp: Path) -> _Scanned:
    extra = kind_of(job).source_columns(job)
    template = job.template
    if job.source.is_dir() and job.prompt is None:
        template = PromptTemplate.column("text")  # a folder's documents are its texts
    id_column = "path" if job.source.is_dir() else job.id_column
    wanted = [id_column, *template.source_columns, *extra.values()]
    if job.upstream is None:
        source = scan_source(job.source, wanted, docs_tmp)
    else:  # staged by write_upstream_rows, in the upstream's order (its numbers are not ours)
        frame = pl.scan_parquet(docs_tmp).drop("row_number")
        source = Source(frame, frame.collect_schema().names(), docs_tmp, folder=False)
    _check_columns(job, source, id_column, template, extra)
    kind = kind_of(job)
    contents = kind.user_contents(job, template)
    if tuple(contents) != kind.request_keys(job) or len({c.column for c in contents.values()}) != 1:
        raise ExtractError(
            f"kind {job.kind!r}: its contents {list(contents)} must match its request keys "
            f"{list(kind.request_keys(job))} and share one column"
        )
    companions: dict[str, pl.Expr] = {}
    if source.blocks:  # PDFs or images: every row's content becomes a list of blocks
        content = contents.get("")
        if content is None or len(contents) > 1 or content.column != "text":
            raise ExtractError(
                f"{job.source}: kind {job.kind} builds its own message content, so it cannot "
                "send the folder's PDFs and images; give it a folder of text files"
            )
        companions = {"text": content.expr.fill_null(""), "doc_tokens": pl.col("doc_tokens")}
        contents = {"": UserContent(documents.content_blocks(content.expr), "content")}
    return _Scanned(source, id_column, template, extra, contents, companions)


def _check_columns(
    job: JobConfig,
    source: Source,
    id_column: str,
    template: PromptTemplate,
    extra: dict[str, str],
) -> None:
    """Name every column the job reads that the source lacks, before anything is sent."""
    available = ", ".join(source.columns) or "(none)"
    by_key = template.shorthand or bool(template.keys)  # columns named by job keys
    named = [id_column, *(template.columns if by_key else ()), *extra.values()]
    missing = [c for c in dict.fromkeys(named) if c not in source.columns]
    if missing and source.folder:
        keys = ", ".join(f"{c!r} ({k})" for k, c in extra.items() if c in missing)
        raise ExtractError(
            f"{job.source}: a folder source has only the columns {available}, so column "
            f"{keys} cannot be read; remove it from the job"
        )
    if missing:
        keys = " / ".join(dict.fromkeys(template.keys or ("text_column", "gold_column")))
        raise ExtractError(
            f"{job.source}: column(s) {', '.join(map(repr, missing))} not found; available "
            f"columns: {available}. Set id_column / {keys}"
        )
    unknown = [] if by_key else template.missing(source.columns)
    if unknown:
        shown = ", ".join("{" + c + "}" for c in unknown)
        raise ExtractError(
            f"{job.source}: the prompt's placeholder(s) {shown} name no column of the source; "
            f"available columns: {available}. Fix the prompt (write {{{{ and }}}} for literal "
            "braces)"
        )


def _rows(frame: FrameT, scanned: _Scanned, offset: int = 1) -> FrameT:
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
        *(expr.alias(name) for name, expr in scanned.companions.items()),
        *(pl.col(c).cast(pl.String).alias(name) for name, c in extra.items()),
        *packed,
    ]
    indexed = frame.with_row_index("row_number", offset=offset)
    row_id = pl.col(scanned.id_column).cast(pl.String).alias("row_id")
    column = next(iter(scanned.contents.values())).column
    if list(scanned.contents) == [""]:
        content = scanned.contents[""].expr.alias(column)
        return indexed.select("row_number", row_id, content, *extras)
    keys = pl.concat_list([pl.lit(key, pl.String) for key in scanned.contents]).alias("request")
    contents = pl.concat_list([c.expr for c in scanned.contents.values()]).alias(column)
    return indexed.select("row_number", row_id, keys, contents, *extras).explode("request", column)


def _validate_and_write(
    scanned: _Scanned, job: JobConfig, settings: Settings, rows_tmp: Path, quarantine_tmp: Path
) -> ExtractSummary:
    frame = scanned.frame
    try:
        # Duplicate detection needs every id at once: this collects the id column and small
        # per-row facts (never the texts), then streams the valid rows straight to Parquet.
        if scanned.parquet is None:
            facts = _facts(frame, scanned).collect(engine="streaming")
        else:
            batches = _parquet_batches(scanned, scanned.fact_columns)
            facts = pl.concat([_facts(b, scanned, offset) for b, offset in batches], rechunk=True)
        if facts.height == 0:
            raise ExtractError(f"{job.source}: the file has no rows; add rows below the header")
        quarantine = _quarantine(facts, scanned, settings)
        mean_chars = facts["text_chars"].mean()
        row_bytes = 64 + 2 * int(mean_chars if isinstance(mean_chars, float) else 0)
        group_rows = max(64, min(65_536, BATCH_BYTES // row_bytes))
        _write_rows(scanned, quarantine["row_number"], rows_tmp, group_rows)
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


def _facts(frame: FrameT, scanned: _Scanned, offset: int = 1) -> FrameT:
    """Small per-row facts for validation (never the texts themselves)."""
    row_id = pl.col(scanned.id_column).cast(pl.String)
    template = scanned.template
    sendable, problem = pl.lit(False), pl.lit(None, pl.String)
    if scanned.source.folder:  # a PDF or image is content; an unusable file has its reason
        sendable, problem = documents.has_block(), pl.col("doc_problem")
    return frame.with_row_index("row_number", offset=offset).select(
        "row_number",
        row_id.alias("row_id"),
        id_ok=row_id.str.contains(r"\S").fill_null(False),
        text_ok=template.has_content() | sendable | problem.is_not_null(),
        text_chars=template.chars(),
        problem=problem,
    )


def _parquet_batches(
    scanned: _Scanned, columns: list[str] | None = None
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
        yield pl.DataFrame(batch), offset
        offset += batch.num_rows


def _write_rows(scanned: _Scanned, bad: pl.Series, target: Path, group_rows: int) -> None:
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
        for frame, offset in _parquet_batches(scanned):
            rows = _rows(frame, scanned, offset).filter(keep)
            writer.write_table(rows.to_arrow().cast(schema))


def _quarantine(facts: pl.DataFrame, scanned: _Scanned, settings: Settings) -> pl.DataFrame:
    """One row per rejected source row: row_number, row_id, reason (and its kinds)."""
    limit = settings.max_text_chars
    # Group only ids whose 8-byte hash repeats: grouping all the strings costs ~200 MB per 1M.
    maybe_repeated = pl.col("id_ok") & pl.col("row_id").hash().is_duplicated()
    duplicates = (
        facts.filter(maybe_repeated)
        .group_by("row_id")
        .agg(pl.col("row_number").sort(), n=pl.len())
        .filter(pl.col("n") > 1)
        .select(
            "row_id",
            duplicate=pl.format(
                "duplicate id '{}' in rows {}{}",
                "row_id",
                pl.col("row_number")
                .list.head(DUPLICATE_ROWS_SHOWN)
                .cast(pl.List(pl.String))
                .list.join(", "),
                pl.when(pl.col("n") > DUPLICATE_ROWS_SHOWN)
                .then(pl.format(" and {} more", pl.col("n") - DUPLICATE_ROWS_SHOWN))
                .otherwise(pl.lit("")),
            ),
        )
    )
    checks = {
        "unusable document": pl.col("problem"),
        "missing id": pl.when(~pl.col("id_ok")).then(
            pl.lit(f"missing id: column {scanned.id_column!r} is empty")
        ),
        "duplicate id": pl.col("duplicate"),
        "missing text": pl.when(~pl.col("text_ok")).then(pl.lit(scanned.template.empty_reason())),
        "text too long": pl.when(pl.col("text_chars") > limit).then(
            pl.format(f"text too long: {{}} characters, the limit is {limit}", "text_chars")
        ),
    }
    suspect = (
        pl.col("problem").is_not_null()
        | ~pl.col("id_ok")
        | ~pl.col("text_ok")
        | (pl.col("text_chars") > limit)
        | pl.col("row_id").is_in(duplicates["row_id"].implode())
    )
    return (
        facts.filter(suspect)
        .join(duplicates, on="row_id", how="left", maintain_order="left")
        .with_columns(**{kind: check for kind, check in checks.items()})
        .filter(pl.any_horizontal(pl.col(kind).is_not_null() for kind in checks))
        .select(
            "row_number",
            "row_id",
            reason=pl.concat_str(list(checks), separator="; ", ignore_nulls=True),
            kinds=pl.concat_list(
                pl.when(pl.col(kind).is_not_null()).then(pl.lit(kind)) for kind in checks
            ).list.drop_nulls(),
        )
    )
