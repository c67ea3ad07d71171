"""JobConfig: job files, overrides, and the errors users see."""

from pathlib import Path

import pytest

from halfrate.config import JobConfigError, JobSpec, resolve_job

GOOD = """
name: intents
source: data.csv
instructions: Label the utterance.
labels: [a, b]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    (tmp_path / "data.csv").write_text("id,text\n1,x\n")
    return path


def test_job_file_resolves_source_next_to_it(tmp_path: Path) -> None:
    job = resolve_job(write(tmp_path, GOOD))
    assert job.source == tmp_path / "data.csv"
    assert job.cache_ttl.value == "1h"


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    job = resolve_job(write(tmp_path, GOOD), JobSpec(model="claude-haiku-4-5", max_attempts=1))
    assert (job.model, job.max_attempts) == ("claude-haiku-4-5", 1)


def test_unknown_key_and_wrong_type_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "labelz: [x]\nmax_tokens: lots\n")
    with pytest.raises(JobConfigError) as err:
        resolve_job(path)
    text = str(err.value)
    assert str(path) in text
    assert "labelz: kind label has no key 'labelz'; its keys are: name, kind," in text
    assert "max_tokens: Input should be a valid integer" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("kind: summarise\n", "kind 'summarise' is unknown; use one of: label, extract, gen"),
        ("cache_ttl: 2h\n", "cache_ttl"),
        ("name: Bad Name\n", "name"),
    ],
)
def test_bad_values(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(JobConfigError, match=message):
        resolve_job(write(tmp_path, GOOD + extra))


def test_label_job_needs_two_unique_labels(tmp_path: Path) -> None:
    with pytest.raises(JobConfigError, match="at least two labels"):
        resolve_job(write(tmp_path, GOOD.replace("[a, b]", "[a]")))
    with pytest.raises(JobConfigError, match="unique"):
        resolve_job(write(tmp_path, GOOD.replace("[a, b]", "[a, a]")))


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(JobConfigError, match="not found"):
        resolve_job(tmp_path / "nope.yaml")
    with pytest.raises(JobConfigError, match="not valid YAML"):
        resolve_job(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(JobConfigError, match=r"job.yaml: a job file is a mapping .* got a list"):
        resolve_job(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(JobConfigError, match="got nothing"):
        resolve_job(write(tmp_path, "# only a comment\n"))


def test_yaml_errors_name_the_line_and_keep_its_text(tmp_path: Path) -> None:
    """The context lines of a YAML error survive (they used to print empty: issue 8, item 4)."""
    with pytest.raises(JobConfigError) as caught:
        resolve_job(write(tmp_path, "name: x\nsource: [unclosed\nlabels: [a\n"))
    message = str(caught.value)
    assert "job.yaml: not valid YAML at line 3, column 7" in message
    assert "(while parsing a flow sequence at line 2, column 9)" in message
    assert "    labels: [a\n          ^" in message  # the offending line, marked


def test_fingerprint_ignores_name_but_not_prompt(tmp_path: Path) -> None:
    base = resolve_job(write(tmp_path, GOOD))
    renamed = resolve_job(write(tmp_path, GOOD), JobSpec(name="other"))
    reworded = resolve_job(write(tmp_path, GOOD), JobSpec(instructions="Something else."))
    assert base.fingerprint() == renamed.fingerprint() != reworded.fingerprint()
