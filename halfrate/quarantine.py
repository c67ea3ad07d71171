"""Why a source row cannot be sent: the quarantine rules, over small per-row facts.

Extract computes the facts (never holding the texts) and writes what `quarantine_rows` returns
to extract/quarantine.parquet; each row gets every reason that applies, joined by "; ".
"""

from typing import NamedTuple

import polars as pl

from halfrate.template import PromptTemplate

DUPLICATE_ROWS_SHOWN = 10


class Limits(NamedTuple):
    max_text_chars: int
    """Longer texts are quarantined (HALFRATE_MAX_TEXT_CHARS)."""
    max_batch_bytes: int
    """A row whose request alone is a larger batch body is quarantined (when measured)."""


def quarantine_rows(
    facts: pl.DataFrame, id_column: str, template: PromptTemplate, limits: Limits
) -> pl.DataFrame:
    """One row per rejected source row: row_number, row_id, reason (and its kinds).

    `facts` has a row per source row: row_number, row_id, id_ok, text_ok, text_chars, and
    where they apply `problem` (why a folder's file cannot be sent: halfrate/documents.py),
    `binary` (a folder's text file that is not text) and `body_bytes` (the row's largest
    request alone as a batch body).
    """
    facts = facts.with_columns(id_key=_id_key())
    duplicates = _duplicates(facts)
    checks = _checks(facts, id_column, template, limits)
    measured = {
        "problem": pl.col("problem").is_not_null(),
        "binary": pl.col("binary"),
        "body_bytes": pl.col("body_bytes") > limits.max_batch_bytes,
    }
    suspect = pl.any_horizontal(
        ~pl.col("id_ok"),
        ~pl.col("text_ok"),
        pl.col("text_chars") > limits.max_text_chars,
        pl.col("id_key").is_in(duplicates["id_key"].implode()),
        *(check for name, check in measured.items() if name in facts.columns),
    )
    return (
        facts.filter(suspect)
        .join(duplicates, on="id_key", how="left", maintain_order="left")
        .with_columns(**checks)
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


def _id_key() -> pl.Expr:
    """What makes two ids the same row: ids that differ only in surrounding spaces are one id
    (they print alike and are usually a padding mistake); case does matter."""
    return pl.col("row_id").str.strip_chars()


def _duplicates(facts: pl.DataFrame) -> pl.DataFrame:
    """id_key -> the reason for every row of an id that occurs more than once (`facts` with
    its id_key)."""
    # Group only ids whose 8-byte hash repeats: grouping all the strings costs ~200 MB per 1M.
    maybe_repeated = pl.col("id_ok") & pl.col("id_key").hash().is_duplicated()
    return (
        facts.filter(maybe_repeated)
        .group_by("id_key")
        .agg(pl.col("row_number").sort(), n=pl.len(), spellings=pl.col("row_id").n_unique())
        .filter(pl.col("n") > 1)
        .select(
            "id_key",
            duplicate=pl.format(
                "duplicate id '{}' in rows {}{}{}",
                "id_key",
                pl.col("row_number")
                .list.head(DUPLICATE_ROWS_SHOWN)
                .cast(pl.List(pl.String))
                .list.join(", "),
                pl.when(pl.col("n") > DUPLICATE_ROWS_SHOWN)
                .then(pl.format(" and {} more", pl.col("n") - DUPLICATE_ROWS_SHOWN))
                .otherwise(pl.lit("")),
                pl.when(pl.col("spellings") > 1)
                .then(pl.lit(" (ids that differ only in surrounding spaces are the same id)"))
                .otherwise(pl.lit("")),
            ),
        )
    )


def _checks(
    facts: pl.DataFrame, id_column: str, template: PromptTemplate, limits: Limits
) -> dict[str, pl.Expr]:
    """Reason kind -> the reason of each row it applies to (null where it does not)."""
    limit = limits.max_text_chars
    checks: dict[str, pl.Expr] = {}
    if "problem" in facts.columns:
        checks["unusable document"] = pl.col("problem")
    checks |= {
        "missing id": pl.when(~pl.col("id_ok")).then(
            pl.lit(f"missing id: column {id_column!r} is empty or blank")
        ),
        "duplicate id": pl.col("duplicate"),
        "missing text": pl.when(~pl.col("text_ok")).then(_missing_text(facts, template)),
        "text too long": pl.when(pl.col("text_chars") > limit).then(
            pl.format(f"text too long: {{}} characters, the limit is {limit}", "text_chars")
        ),
    }
    if "binary" in facts.columns:
        checks["not text"] = pl.when(pl.col("binary")).then(
            pl.lit(
                "not text: the file holds NUL bytes (binary data, or UTF-16 text); remove it "
                "from the folder or convert it to UTF-8 text"
            )
        )
    if "body_bytes" in facts.columns:
        most = limits.max_batch_bytes
        checks["request too large"] = pl.when(pl.col("body_bytes") > most).then(
            pl.format(
                f"request too large: {{}} bytes as a batch body, over HALFRATE_MAX_BATCH_BYTES="
                f"{most:,}; shorten the text (or the instructions), or raise the limit",
                "body_bytes",
            )
        )
    return checks


def _missing_text(facts: pl.DataFrame, template: PromptTemplate) -> pl.Expr:
    """Why a row has nothing to send: for a folder's document, what is wrong with the file."""
    reason = pl.lit(template.empty_reason())
    if "binary" not in facts.columns or not template.shorthand:
        return reason
    return (
        pl.when(pl.col("binary"))
        .then(pl.lit(None, pl.String))  # said once, by "not text"
        .when(pl.col("text_chars") == 0)
        .then(pl.lit("empty file: it has no text; remove it from the folder or give it text"))
        .otherwise(pl.lit("blank file: it holds only whitespace; remove it or give it text"))
    )
