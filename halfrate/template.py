"""Prompt templates: `{column}` placeholders over a source's columns, rendered with Polars.

`prompt: "Title: {title}\\n\\n{body}"` renders every row as one Polars `concat_str` over the
source's columns (no Python per row); `{{` and `}}` are literal braces. `text_column: body` is
the shorthand for `prompt: "{body}"`. A null value renders as empty; a row whose placeholders
are all empty or blank has nothing to send and is quarantined by extract.
"""

from dataclasses import dataclass
from string import Formatter
from typing import TYPE_CHECKING

from halfrate.errors import ActionableError

if TYPE_CHECKING:  # the job models import this module; the parse and load steps need no Polars
    import polars as pl


class TemplateError(ValueError, ActionableError):
    """A prompt template that cannot be parsed, or that names columns the source lacks."""


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed template: literal texts around placeholders (one more literal than columns)."""

    literals: tuple[str, ...]
    columns: tuple[str, ...]
    """The placeholders in order (a column may appear more than once)."""
    shorthand: bool = False
    """True for the `text_column` shorthand (quarantine reasons then name the column)."""
    required: tuple[str, ...] = ()
    """Columns that must each hold text (judge: the response); a row without is quarantined."""
    keys: tuple[str, ...] = ()
    """For a template a kind builds from column keys (judge: response_column, ...): the job
    key naming each placeholder's column, so errors say which key to fix."""

    @classmethod
    def parse(cls, text: str) -> "PromptTemplate":
        """Parse `text`; raises TemplateError for bad braces, `{}` or format specs."""
        literals, columns = [""], []
        try:
            parsed = list(Formatter().parse(text))
        except ValueError as exc:  # "Single '}' encountered", "expected '}' before end"
            raise TemplateError(f"{exc}; write {{{{ and }}}} for literal braces") from None
        for literal, field, spec, conversion in parsed:
            literals[-1] += literal
            if field is None:
                continue
            if not field.strip() or spec or conversion:
                shown = "{" + field + (f"!{conversion}" if conversion else "")
                shown += (f":{spec}" if spec else "") + "}"
                raise TemplateError(
                    f"placeholder {shown} must be a plain column name such as {{title}} (no "
                    "format specs or conversions); write {{ and }} for literal braces"
                )
            columns.append(field)
            literals.append("")
        if not columns:
            raise TemplateError(
                "the prompt has no {column} placeholder, so every row would send the same "
                "text; name the source columns to insert, e.g. 'Title: {title}\\n\\n{body}'"
            )
        return cls(tuple(literals), tuple(columns))

    @classmethod
    def column(cls, name: str) -> "PromptTemplate":
        """The `text_column` shorthand: the column's value is the whole prompt."""
        return cls(("", ""), (name,), shorthand=True)

    @property
    def source_columns(self) -> list[str]:
        """The distinct columns the template reads, in order of first use."""
        return list(dict.fromkeys(self.columns))

    def missing(self, available: list[str]) -> list[str]:
        """The template's columns that are not among `available`."""
        return [c for c in self.source_columns if c not in available]

    def render(self) -> "pl.Expr":
        """The rendered prompt of every row (nulls render as empty)."""
        import polars as pl

        if self.literals == ("", "") and len(self.columns) == 1:
            return _value(self.columns[0])
        parts: list[pl.Expr] = []
        for literal, column in zip(self.literals, (*self.columns, None), strict=True):
            if literal:
                parts.append(pl.lit(literal, pl.String))
            if column is not None:
                parts.append(_value(column).fill_null(""))
        return pl.concat_str(parts)

    def has_content(self) -> "pl.Expr":
        """True where at least one placeholder's value (and each required one's) holds a
        non-blank character."""
        import polars as pl

        def filled(column: str) -> pl.Expr:
            return _value(column).str.contains(r"\S").fill_null(False)

        some = pl.any_horizontal(filled(c) for c in self.source_columns)
        return pl.all_horizontal(some, *(filled(c) for c in self.required))

    def chars(self) -> "pl.Expr":
        """The rendered prompt's length in characters, without building it."""
        import polars as pl

        literal_chars = sum(len(text) for text in self.literals)
        lengths = [_value(c).str.len_chars().fill_null(0) for c in self.columns]
        return pl.sum_horizontal(*lengths) + literal_chars

    def empty_reason(self) -> str:
        """The quarantine reason for a row with nothing in any placeholder (or a required one)."""
        if self.required:
            shown = ", ".join(map(repr, self.required))
            return f"missing text: column(s) {shown} must not be empty or blank"
        if self.shorthand:
            return f"missing text: column {self.columns[0]!r} is empty or blank"
        shown = ", ".join(map(repr, self.source_columns))
        return f"missing text: the prompt's column(s) {shown} are all empty or blank"


def _value(column: str) -> "pl.Expr":
    import polars as pl

    return pl.col(column).cast(pl.String)
