"""Extract: read the job's source with Polars, keep valid rows, quarantine the rest with a reason.

Writes extract/rows.parquet (row_number, row_id, text, and the kind's extra columns such as
label's gold) and extract/quarantine.parquet (row_number, row_id, reason), then
extract/source.json (the source fingerprint and the summary) as the commit point. `text` is
the job's prompt template rendered over the source's columns (halfrate/template.py), so it is
exactly what each request sends (a folder's PDFs and images: `content`, the JSON of its
content blocks; a kind with several requests per row: one line per row and request). A rerun
against an unchanged source reuses the files; a changed source is an error, because requests
already built from the old rows must never mix with new ones.

Extract computes small per-row facts (never holding the texts); the rules that turn them into
quarantine reasons are in halfrate/quarantine.py.
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
from halfrate.build import BLOCKS_MESSAGE_BYTES, RequestTemplate, message_json
from halfrate.chain import upstream_fingerprint, write_upstream_rows
from halfrate.config import JobConfig
from halfrate.documents import FOLDER_COLUMNS
from halfrate.kinds import kind_of
from halfrate.kinds.base import UserContent
from halfrate.progress_hooks import SILENT, StepProgress, step
from halfrate.quarantine import Limits, quarantine_rows
from halfrate.settings import Settings
from halfrate.sources import (
    ExtractError,
    Source,
    file_size_changed,
    scan_source,
    source_fingerprint,
    unreadable,
)
from halfrate.template import PromptTemplate
from halfrate.workspace import JobPaths, write_atomic

__all__ = ["ExtractError", "ExtractSummary", "extract_rows", "source_fingerprint"]

log = logging.getLogger(__name__)

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
        _check_same_limit(job, paths, state, settings)
        if paths.rows.exists() and paths.quarantine.exists():
            log.info("extract: reusing %s (source unchanged)", paths.rows)
            return ExtractSummary.model_validate(state["summary"] | {"reused": True})
    with _temp_files(paths) as (rows_tmp, quarantine_tmp, docs_tmp):
        if job.upstream is not None:  # another job's outputs, staged like documents
            write_upstream_rows(job.upstream, settings, docs_tmp)
        scanned = _scan_source(job, docs_tmp, settings)
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
        "max_batch_bytes": settings.max_batch_bytes,
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


def check_source_unchanged(job: JobConfig, paths: JobPaths) -> None:
    """A cheap early test that the source is the one this job extracted (a file's size, a
    folder's listing); extract compares the full fingerprint (a file's hash) itself.

    A job source (`source: job:<name>`) is not tested here: its identity is read from the
    warehouse and, in a chain, the upstream job runs first. Extract compares it in full
    before anything is sent.
    """
    state_file = paths.rows.parent / "source.json"
    if job.upstream is not None or not state_file.exists():
        return
    recorded = orjson.loads(state_file.read_bytes())["fingerprint"]
    if job.source.is_dir() or recorded.get("kind") == "folder":
        if source_fingerprint(job.source) != recorded:
            raise _source_changed(job.source)
    elif file_size_changed(job.source, recorded):
        raise _source_changed(job.source)


def _source_changed(source: Path) -> ExtractError:
    return ExtractError(
        f"{source}: the source changed since this job first extracted it; put the original "
        "back, rerun with --restart to start the job over, or give the job a new name"
    )


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
        raise _source_changed(source)
    if state["max_text_chars"] != settings.max_text_chars:
        raise ExtractError(
            f"{source}: this job was extracted with max_text_chars={state['max_text_chars']}, "
            f"now {settings.max_text_chars}; restore the setting, or rerun with --restart"
        )


def _check_same_limit(
    job: JobConfig, paths: JobPaths, state: dict[str, Any], settings: Settings
) -> None:
    """A lower HALFRATE_MAX_BATCH_BYTES than the extract checked the rows against is refused
    when a row's request could now exceed it (never under the default limit, unless rows
    send PDFs or images)."""
    checked = state.get("max_batch_bytes", settings.max_batch_bytes)
    if settings.max_batch_bytes >= checked:
        return
    template, _ = job_columns(job)
    contents = _contents(job, template, _sent_blocks(job, paths)).contents
    if _size_check(job, contents, settings) is not None:
        raise ExtractError(
            f"{job.source}: this job's rows were checked against HALFRATE_MAX_BATCH_BYTES="
            f"{checked}, now {settings.max_batch_bytes}, and a row's request could be over it; "
            "restore the setting, or rerun with --restart"
        )


def _sent_blocks(job: JobConfig, paths: JobPaths) -> bool:
    """Whether the extracted rows send a folder's PDFs or images (if unknown: a folder may)."""
    if not job.source.is_dir():
        return False
    return not paths.rows.exists() or "content" in pq.read_schema(paths.rows).names


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
    made: "_Contents"
    """What each row sends, per request key, and what rows.parquet carries beside it."""
    requests: RequestTemplate | None = None
    """Set when a row's request may exceed `max_batch_bytes`: each row's size is then checked."""
    max_batch_bytes: int = 0

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
        if self.source.folder:  # the text too: a file that is not text is never sent
            columns += [FOLDER_COLUMNS[1], *documents.DOCUMENT_COLUMNS]
        return list(dict.fromkeys(columns))

    @property
    def fact_columns(self) -> list[str]:
        """The source columns validation reads (a document's data is not one of them)."""
        return [c for c in self.wanted if c != "doc_data"]


@dataclass(frozen=True)
class _Contents:
    """What each row sends, per request key, and how to measure it without reading it."""

    contents: dict[str, UserContent]
    """Per request key (one key, "", unless the kind sends several requests per row): the
    rendered template, unless the kind builds content blocks (all of one column)."""
    companions: dict[str, pl.Expr]
    """Columns rows.parquet carries beside content blocks made from a folder's documents: the
    text part and the documents' estimated tokens (for the cost estimate)."""
    message_bytes: list[pl.Expr]
    """Each request's user message as JSON, in bytes (a document's data is not read)."""


def _scan_source(job: JobConfig, docs_tmp: Path, settings: Settings) -> _Scanned:
    extra = kind_of(job).source_columns(job)
    template, id_column = job_columns(job)
    wanted = [id_column, *template.source_columns, *extra.values()]
    if job.upstream is None:
        source = scan_source(job.source, wanted, docs_tmp)
    else:  # staged by write_upstream_rows, in the upstream's order (its numbers are not ours)
        frame = pl.scan_parquet(docs_tmp).drop("row_number")
        source = Source(frame, frame.collect_schema().names(), docs_tmp, folder=False)
    check_columns(job, source.columns, source.folder)
    made = _contents(job, template, source.blocks)
    requests = _size_check(job, made.contents, settings)
    return _Scanned(source, id_column, template, extra, made, requests, settings.max_batch_bytes)


def _contents(job: JobConfig, template: PromptTemplate, blocks: bool) -> _Contents:
    """The kind's contents per request key; with `blocks` (a folder with PDFs or images)
    every row's content becomes its document block and its text."""
    kind = kind_of(job)
    contents = kind.user_contents(job, template)
    if tuple(contents) != kind.request_keys(job) or len({c.column for c in contents.values()}) != 1:
        raise ExtractError(
            f"kind {job.kind!r}: its contents {list(contents)} must match its request keys "
            f"{list(kind.request_keys(job))} and share one column"
        )
    if not blocks:
        sizes = [
            message_json(c.expr, c.column == "content").str.len_bytes() for c in contents.values()
        ]
        return _Contents(contents, {}, sizes)
    content = contents.get("")
    if content is None or len(contents) > 1 or content.column != "text":
        raise ExtractError(
            f"{job.source}: kind {job.kind} builds its own message content, so it cannot "
            "send the folder's PDFs and images; give it a folder of text files"
        )
    companions = {"text": content.expr.fill_null(""), "doc_tokens": pl.col("doc_tokens")}
    sizes = [BLOCKS_MESSAGE_BYTES + documents.content_blocks_bytes(content.expr)]
    blocks_content = UserContent(documents.content_blocks(content.expr), "content")
    return _Contents({"": blocks_content}, companions, sizes)


def job_columns(job: JobConfig) -> tuple[PromptTemplate, str]:
    """What each row's text is made of, and which column is its id (a folder: its path)."""
    if job.source.is_dir():
        template = job.template if job.prompt is not None else PromptTemplate.column("text")
        return template, FOLDER_COLUMNS[0]
    return job.template, job.id_column


JSON_BYTES_PER_CHAR = 6
"""The most bytes one character takes in a JSON string (a control character: \\u0000)."""


def _size_check(
    job: JobConfig, contents: dict[str, UserContent], settings: Settings
) -> RequestTemplate | None:
    """The request template, when a row's request could exceed `max_batch_bytes` (a row
    over it is quarantined; under the default limit, no text row can be, while content
    blocks, e.g. a folder's PDFs, always are measured)."""
    requests = RequestTemplate(job)
    limit = settings.max_batch_bytes
    if requests.min_body_bytes() > limit:
        raise ExtractError(
            f"{job.source}: every request of this job is at least {requests.min_body_bytes():,} "
            f"bytes as a batch body (the instructions and settings alone), over "
            f"HALFRATE_MAX_BATCH_BYTES={limit:,}; shorten the instructions or raise the limit"
        )
    most = requests.min_body_bytes() + 64 + JSON_BYTES_PER_CHAR * settings.max_text_chars
    blocks = any(c.column == "content" for c in contents.values())
    return requests if blocks or most > limit else None


def check_columns(job: JobConfig, columns: list[str], folder: bool) -> None:
    """Name every column the job reads that the source lacks, before anything is sent.

    Raises:
        ExtractError: naming the missing columns (or placeholders) and the available ones.
    """
    template, id_column = job_columns(job)
    extra = kind_of(job).source_columns(job)
    available = ", ".join(columns) or "(none)"
    by_key = template.shorthand or bool(template.keys)  # columns named by job keys
    named = [id_column, *(template.columns if by_key else ()), *extra.values()]
    missing = [c for c in dict.fromkeys(named) if c not in columns]
    if missing and folder:
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
    unknown = [] if by_key else template.missing(columns)
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


def _validate_and_write(
    scanned: _Scanned, job: JobConfig, settings: Settings, rows_tmp: Path, quarantine_tmp: Path
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


def _all_facts(scanned: _Scanned, progress: StepProgress) -> pl.DataFrame:
    """Every row's facts: Polars streams a CSV or JSON Lines source (no progress to tell),
    a Parquet source is read a batch at a time (each one reported)."""
    if scanned.parquet is None:
        return _facts(scanned.frame, scanned).collect(engine="streaming")
    batches = _parquet_batches(scanned, scanned.fact_columns, progress)
    return pl.concat([_facts(b, scanned, offset) for b, offset in batches], rechunk=True)


def _facts(frame: FrameT, scanned: _Scanned, offset: int = 1) -> FrameT:
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


def _rows_in(scanned: _Scanned) -> int | None:
    """A Parquet source's row count (from its footer); None for the others."""
    if scanned.parquet is None:
        return None
    return int(pq.ParquetFile(scanned.parquet).metadata.num_rows)


def _parquet_batches(
    scanned: _Scanned, columns: list[str] | None = None, progress: StepProgress = SILENT
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
    scanned: _Scanned,
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
