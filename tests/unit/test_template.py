"""Prompt templates: parsing, vectorised rendering, and what extract does with them."""

import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from halfrate.config import JobConfigError, parse_job
from halfrate.extract import ExtractError, extract_rows
from halfrate.kinds.label import LabelJob
from halfrate.settings import Settings
from halfrate.template import PromptTemplate, TemplateError
from halfrate.workspace import JobPaths


def job(source: Path, **keys: Any) -> LabelJob:
    fields = {"name": "t", "source": source, "instructions": "Label it.", "labels": ["a", "b"]}
    return LabelJob(**(fields | keys))


def render(template: str, frame: pl.DataFrame) -> list[str | None]:
    return frame.select(PromptTemplate.parse(template).render()).to_series().to_list()


def test_placeholders_and_literal_braces() -> None:
    parsed = PromptTemplate.parse('Title: {title}\n\n{body} {{"json": {title}}}')
    assert parsed.columns == ("title", "body", "title")
    assert parsed.source_columns == ["title", "body"]
    assert parsed.literals == ("Title: ", "\n\n", ' {"json": ', "}")
    frame = pl.DataFrame({"title": ["Hi"], "body": ["there"]})
    assert render('Title: {title}\n\n{body} {{"json": {title}}}', frame) == [
        'Title: Hi\n\nthere {"json": Hi}'
    ]


def test_column_names_with_spaces_dots_and_unicode() -> None:
    frame = pl.DataFrame({"first name": ["Zoë"], "a.b": ["x"], "título": ["y"]})
    assert render("{first name}|{a.b}|{título}", frame) == ["Zoë|x|y"]


def test_nulls_render_as_empty_and_other_types_as_text() -> None:
    frame = pl.DataFrame({"t": ["x", None, None], "n": [1, 2, None], "f": [True, None, False]})
    assert render("[{t}] {n} {f}", frame) == ["[x] 1 true", "[] 2 ", "[]  false"]


def test_rendering_matches_str_format_on_random_text() -> None:
    rng = random.Random(5)
    alphabet = 'ab {}"\\\n\t\x01é☃😀'
    rows = [["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(2)]]
    rows += [
        ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(2)] for _ in range(200)
    ]
    frame = pl.DataFrame(rows, schema=["a", "b"], orient="row")
    template = "<{a}>{{{b}}}\n{a}"
    assert render(template, frame) == [template.format(a=a, b=b) for a, b in rows]


def test_length_is_counted_without_rendering() -> None:
    frame = pl.DataFrame({"a": ["één", None], "b": ["xyz", "q"]})
    template = PromptTemplate.parse("A: {a} B: {b} {a}")
    lengths = frame.select(template.chars()).to_series().to_list()
    assert lengths == [len(x) for x in render("A: {a} B: {b} {a}", frame)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{title", "expected '}' before end of string"),
        ("title}", "Single '}' encountered"),
        ("Hi {}", "placeholder {} must be a plain column name"),
        ("{ }", "placeholder { } must be a plain column name"),
        ("{title:>10}", "placeholder {title:>10} must be a plain column name"),
        ("{title!r}", "placeholder {title!r} must be a plain column name"),
        ("Label this: {{text}}", "the prompt has no {column} placeholder"),
    ],
)
def test_bad_templates_are_refused_with_the_fix(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("(", r"\(")):
        PromptTemplate.parse(text)
    with pytest.raises(JobConfigError) as err:  # and in a job file, as a key error
        parse_job(
            {"name": "t", "source": "x.csv", "instructions": "i", "labels": ["a", "b"]}
            | {"prompt": text},
            "job.yaml",
        )
    assert "job.yaml: invalid job configuration\n  - prompt: " in str(err.value)


def test_prompt_and_text_column_are_one_or_the_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give either prompt or text_column, not both"):
        job(tmp_path / "x.csv", prompt="{a}", text_column="body")
    assert job(tmp_path / "x.csv", prompt="{a}").template.columns == ("a",)
    assert job(tmp_path / "x.csv", text_column="body").template == PromptTemplate.column("body")


def test_extract_renders_the_prompt_and_quarantines_rows_with_nothing_to_say(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "id,title,body\n"
        "1,Refund,Card charged twice\n"
        "2,,Only a body\n"  # null title renders as empty
        "3,Only a title,\n"
        "4,,\n"  # nothing: quarantined
        "5,  ,\t\n"  # blank only: quarantined
    )
    paths = JobPaths(tmp_path / "job")
    summary = extract_rows(job(source, prompt="Title: {title}\n\n{body}"), paths, Settings())
    assert (summary.valid_rows, summary.quarantined_rows) == (3, 2)
    assert summary.reasons == {"missing text": 2}
    rows = pl.read_parquet(paths.rows)
    assert rows.columns == ["row_number", "row_id", "text"]
    assert rows["text"].to_list() == [
        "Title: Refund\n\nCard charged twice",
        "Title: \n\nOnly a body",
        "Title: Only a title\n\n",
    ]
    reasons = pl.read_parquet(paths.quarantine)["reason"].to_list()
    expected = "missing text: the prompt's column(s) 'title', 'body' are all empty or blank"
    assert reasons == [expected, expected]


def test_the_limit_applies_to_the_rendered_prompt(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pl.DataFrame({"id": ["a", "b"], "x": ["12345", "1"], "y": ["123", "1"]}).write_parquet(source)
    paths = JobPaths(tmp_path / "job")
    extract_rows(job(source, prompt="{x}-{y}"), paths, Settings(max_text_chars=5))
    reasons = pl.read_parquet(paths.quarantine)["reason"].to_list()
    assert reasons == ["text too long: 9 characters, the limit is 5"]
    assert pl.read_parquet(paths.rows)["text"].to_list() == ["1-1"]


def test_a_placeholder_naming_a_missing_column_is_an_error_before_anything_is_written(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "title": "a", "body": "b"}\n')
    paths = JobPaths(tmp_path / "job")
    with pytest.raises(ExtractError) as err:
        extract_rows(job(source, prompt="{titel}: {body} {summary}"), paths, Settings())
    message = str(err.value)
    assert str(source) in message
    assert "the prompt's placeholder(s) {titel}, {summary} name no column of the source" in message
    assert "available columns: id, title, body" in message
    assert not paths.rows.exists() and not paths.quarantine.exists()


def test_a_folder_source_offers_path_and_text(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("first document")
    paths = JobPaths(tmp_path / "job")
    extract_rows(job(folder, prompt="File {path}:\n{text}"), paths, Settings())
    rows = pl.read_parquet(paths.rows)
    assert rows.select("row_id", "text").rows() == [("a.txt", "File a.txt:\nfirst document")]
    with pytest.raises(
        ExtractError, match=r"placeholder\(s\) \{body\}.*available columns: path, text"
    ):
        extract_rows(job(folder, prompt="{body}"), JobPaths(tmp_path / "job2"), Settings())
