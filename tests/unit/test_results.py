"""Parsing results (what the load does): the API's four result shapes become typed rows with a validated output."""

import importlib
import random
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from halfrate.results import ParseSummary, ResultsFormatError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
staging = importlib.import_module("staging")


def _parse(
    tmp_path: Path, lines: list[dict[str, Any]], **job: Any
) -> tuple[ParseSummary, dict[str, dict[str, Any]]]:
    raw = staging.write_jsonl(tmp_path / "results" / "msgbatch_01.jsonl", lines)
    out = tmp_path / "results" / "msgbatch_01.parsed.parquet"
    summary = staging.parse_results(raw, out, staging.make_job(tmp_path, **job), "msgbatch_01")
    cursor = duckdb.execute("select * from read_parquet(?)", [str(out)])
    names = [d[0] for d in cursor.description or []]
    rows = {
        r[names.index("custom_id")]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()
    }
    return summary, rows


def test_all_four_result_types_become_typed_rows(tmp_path: Path) -> None:
    summary, rows = _parse(
        tmp_path,
        [
            staging.succeeded("a1_ok", tokens=staging.usage(120, 9, write_1h=4096, read=0)),
            staging.errored("a1_bad", "invalid_request_error", "max_tokens: too large"),
            staging.errored("a1_busy", "overloaded_error", "Overloaded"),
            staging.canceled("a1_stop"),
            staging.expired("a1_late"),
        ],
    )
    assert summary.model_dump() == {
        "batch_id": "msgbatch_01",
        "rows": 5,
        "succeeded": 1,
        "errored": 2,
        "canceled": 1,
        "expired": 1,
        "valid_outputs": 1,
        "invalid_outputs": 0,
        "truncated": 0,
        "retriable": 3,
        "failed": 1,
    }
    ok = rows["a1_ok"]
    assert ok["batch_id"] == "msgbatch_01" and ok["job_name"] == "intents"
    assert (ok["result_type"], ok["outcome"], ok["text"], ok["output_valid"]) == (
        "succeeded",
        "succeeded",
        '{"label":"billing"}',
        True,
    )
    assert "label" not in ok  # kinds read their fields from the output (sql/kinds/)
    assert ok["message_id"].startswith("msg_01") and ok["model"] == "claude-sonnet-5"
    assert (ok["stop_reason"], ok["service_tier"]) == ("end_turn", "batch")
    assert (ok["input_tokens"], ok["output_tokens"]) == (120, 9)
    assert (ok["cache_creation_input_tokens"], ok["cache_write_5m_tokens"]) == (4096, 0)
    assert (ok["cache_write_1h_tokens"], ok["cache_read_input_tokens"]) == (4096, 0)
    bad = rows["a1_bad"]
    assert (bad["outcome"], bad["error_type"], bad["error_message"]) == (
        "failed",
        "invalid_request_error",
        "max_tokens: too large",
    )
    assert bad["output_valid"] is None and bad["input_tokens"] is None and bad["text"] is None
    assert rows["a1_busy"]["outcome"] == "retriable"
    assert rows["a1_busy"]["error_type"] == "overloaded_error"
    for key, kind in (("a1_stop", "canceled"), ("a1_late", "expired")):
        assert rows[key]["result_type"] == kind and rows[key]["outcome"] == "retriable"
        assert rows[key]["error_type"] is None and rows[key]["output_tokens"] is None


def test_forced_tool_use_output_is_its_input_as_json(tmp_path: Path) -> None:
    line = staging.succeeded("a1_t", None, stop_reason="tool_use", tool_input={"label": "card"})
    _, rows = _parse(tmp_path, [line])
    assert rows["a1_t"]["text"] == '{"label":"card"}'
    assert rows["a1_t"]["outcome"] == "succeeded"


@pytest.mark.parametrize(
    ("text", "stop_reason", "reason"),
    [
        ("billing", "end_turn", "not JSON"),
        ('{"label": "billing"', "end_turn", "not JSON"),
        ('["billing"]', "end_turn", "not a JSON object"),
        ('{"answer": "billing"}', "end_turn", "no 'label' field in the output"),
        ('{"label": 3}', "end_turn", "label is an integer, expected a string"),
        (
            '{"label": "card", "why": "x"}',
            "end_turn",
            "unexpected key 'why' in the output",
        ),
        (
            '{"label": "refund"}',
            "end_turn",
            "label 'refund' is not one of ['billing', 'card', 'other']",
        ),
        ('{"label": "bill', "max_tokens", "stop_reason max_tokens: output truncated"),
        ("I can't help with that.", "refusal", "refusal"),
        (None, "end_turn", "no text or tool_use output"),
    ],
)
def test_invalid_outputs_are_kept_with_the_reason(
    tmp_path: Path, text: str | None, stop_reason: str, reason: str
) -> None:
    summary, rows = _parse(tmp_path, [staging.succeeded("a1_x", text, stop_reason=stop_reason)])
    row = rows["a1_x"]
    assert (row["outcome"], row["output_valid"], row["invalid_reason"]) == (
        "invalid_output",
        False,
        reason,
    )
    assert row["text"] == text
    assert summary.invalid_outputs == 1 and summary.valid_outputs == 0


def test_text_blocks_are_concatenated(tmp_path: Path) -> None:
    line = staging.succeeded("a1_x", '{"label":')
    line["result"]["message"]["content"].append({"type": "text", "text": ' "other"}'})
    _, rows = _parse(tmp_path, [line])
    assert rows["a1_x"]["text"] == '{"label": "other"}' and rows["a1_x"]["output_valid"]


def test_older_usage_without_cache_fields_gives_zero(tmp_path: Path) -> None:
    old = staging.succeeded("a1_old", tokens={"input_tokens": 11, "output_tokens": 36})
    unsplit = staging.succeeded(
        "a1_unsplit",
        tokens={
            "input_tokens": 5,
            "output_tokens": 6,
            "cache_creation_input_tokens": 700,
            "cache_read_input_tokens": 30,
        },
    )
    _, rows = _parse(tmp_path, [old, unsplit])
    cols = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_input_tokens",
    )
    assert [rows["a1_old"][c] for c in cols] == [11, 36, 0, 0, 0, 0]
    # without the per-TTL split, writes count as 5m writes (the default TTL)
    assert [rows["a1_unsplit"][c] for c in cols] == [5, 6, 700, 700, 0, 30]
    assert rows["a1_old"]["service_tier"] is None


def test_shuffled_results_parse_to_the_same_rows(tmp_path: Path) -> None:
    lines = [
        staging.succeeded(f"a1_r{i}", f'{{"label":"{staging.LABELS[i % 3]}"}}') for i in range(40)
    ]
    lines += [staging.expired(f"a1_e{i}") for i in range(5)]
    _, in_order = _parse(tmp_path / "one", lines)
    random.Random(7).shuffle(lines)
    _, shuffled = _parse(tmp_path / "two", lines)
    assert shuffled == in_order
    assert shuffled["a1_r4"]["text"] == '{"label":"card"}' and shuffled["a1_r4"]["output_valid"]


def _raw(tmp_path: Path, text: str) -> Path:
    raw = tmp_path / "results" / "msgbatch_bad.jsonl"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(text)
    return raw


def _good(custom_id: str) -> str:
    return orjson.dumps(staging.canceled(custom_id)).decode()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"custom_id": "a1_y", "result": {"type": "cance', "line 3: not valid JSON"),
        ("[1, 2]", "line 3: expected a JSON object, got list"),
        ('{"result": {"type": "canceled"}}', "line 3: missing or empty 'custom_id'"),
        ('{"custom_id": "a1_y", "result": {"type": "done"}}', "line 3: 'result.type' is 'done'"),
        (
            '{"custom_id": "a1_x", "result": {"type": "expired"}}',
            "line 3: custom_id 'a1_x' already appeared on line 2",
        ),
    ],
)
def test_a_bad_line_is_an_error_naming_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    raw = _raw(tmp_path, "\n".join([_good("a1_w"), _good("a1_x"), line, _good("a1_z")]) + "\n")
    out = tmp_path / "results" / "msgbatch_bad.parsed.parquet"
    with pytest.raises(ResultsFormatError) as info:
        staging.parse_results(raw, out, staging.make_job(tmp_path), "msgbatch_bad")
    assert str(raw) in str(info.value) and message in str(info.value)
    assert "download the batch again" in str(info.value)
    assert not out.exists() and list(out.parent.glob(".*tmp")) == []


def test_a_missing_results_file_says_to_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download the batch first"):
        staging.parse_results(
            tmp_path / "nope.jsonl", tmp_path / "o.parquet", staging.make_job(tmp_path), "b"
        )
