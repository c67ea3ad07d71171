"""What a job reads from its source: the columns it needs, and what each row sends (and its size)."""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from halfrate import documents
from halfrate.build import BLOCKS_MESSAGE_BYTES, RequestTemplate, message_json
from halfrate.config import JobConfig
from halfrate.documents import FOLDER_COLUMNS
from halfrate.kinds import kind_of
from halfrate.kinds.base import UserContent
from halfrate.settings import Settings
from halfrate.sources import ExtractError, Source, scan_source
from halfrate.template import PromptTemplate


@dataclass(frozen=True)
class Scanned:
    """The source's frame and how each of our columns is made from its columns."""

    source: Source
    id_column: str
    template: PromptTemplate
    extra: dict[str, str]
    """The kind's extra columns: our name -> the source's column (e.g. gold)."""
    made: "Contents"
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
class Contents:
    """What each row sends, per request key, and how to measure it without reading it."""

    contents: dict[str, UserContent]
    """Per request key (one key, "", unless the kind sends several requests per row): the
    rendered template, unless the kind builds content blocks (all of one column)."""
    companions: dict[str, pl.Expr]
    """Columns rows.parquet carries beside content blocks made from a folder's documents: the
    text part and the documents' estimated tokens (for the cost estimate)."""
    message_bytes: list[pl.Expr]
    """Each request's user message as JSON, in bytes (a document's data is not read)."""


def scan_job_source(job: JobConfig, docs_tmp: Path, settings: Settings) -> Scanned:
    extra = kind_of(job).source_columns(job)
    template, id_column = job_columns(job)
    wanted = [id_column, *template.source_columns, *extra.values()]
    if job.upstream is None:
        source = scan_source(job.source, wanted, docs_tmp)
    else:  # staged by write_upstream_rows, in the upstream's order (its numbers are not ours)
        frame = pl.scan_parquet(docs_tmp).drop("row_number")
        source = Source(frame, frame.collect_schema().names(), docs_tmp, folder=False)
    check_columns(job, source.columns, source.folder)
    made = contents_of(job, template, source.blocks)
    requests = size_check(job, made.contents, settings)
    return Scanned(source, id_column, template, extra, made, requests, settings.max_batch_bytes)


def contents_of(job: JobConfig, template: PromptTemplate, blocks: bool) -> Contents:
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
        return Contents(contents, {}, sizes)
    content = contents.get("")
    if content is None or len(contents) > 1 or content.column != "text":
        raise ExtractError(
            f"{job.source}: kind {job.kind} builds its own message content, so it cannot "
            "send the folder's PDFs and images; give it a folder of text files"
        )
    companions = {"text": content.expr.fill_null(""), "doc_tokens": pl.col("doc_tokens")}
    sizes = [BLOCKS_MESSAGE_BYTES + documents.content_blocks_bytes(content.expr)]
    blocks_content = UserContent(documents.content_blocks(content.expr), "content")
    return Contents({"": blocks_content}, companions, sizes)


def job_columns(job: JobConfig) -> tuple[PromptTemplate, str]:
    """What each row's text is made of, and which column is its id (a folder: its path)."""
    if job.source.is_dir():
        template = job.template if job.prompt is not None else PromptTemplate.column("text")
        return template, FOLDER_COLUMNS[0]
    return job.template, job.id_column


JSON_BYTES_PER_CHAR = 6
"""The most bytes one character takes in a JSON string (a control character: \\u0000)."""


def size_check(
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
