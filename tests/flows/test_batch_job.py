"""The whole pipeline as a Prefect flow, against the emulator over loopback with the real SDK."""

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from flows.batch_job import batch_job
from halfrate import pipeline
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorServer
from halfrate_emulator.options import FaultConfig, HttpFault
from tests.flows.conftest import write_job

pytestmark = pytest.mark.slow

FINAL_STATES = {"succeeded", "invalid_output", "failed", "exhausted", "quarantined"}


def submitted_custom_ids(server: EmulatorServer) -> list[str]:
    return [cid for create in server.admin.audit(custom_ids=True) for cid in create["custom_ids"]]


def warehouse_rows(query: str, **params: object) -> list[tuple[object, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(query, params).fetchall()


def test_demo_job_labels_every_row_and_prices_it(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    summary = batch_job(job_file=str(write_job(tmp_path)))

    assert summary.rows == 693
    assert summary.final_states == {"succeeded": 693}
    assert summary.batches == 2  # the 1-request cache-priming batch, then the main batch
    assert summary.cache_read_tokens > 0 and summary.cache_hit_rate is not None
    assert summary.cache_hit_rate > 0.5  # the main batch reads what the prime batch wrote
    assert summary.batch_cost_usd is not None and summary.realtime_cost_usd is not None
    assert summary.batch_cost_usd == pytest.approx(summary.realtime_cost_usd / 2, rel=1e-6)
    assert summary.detail("accuracy") is not None and summary.detail("gold_rows") == 693

    ids = submitted_custom_ids(emulator)
    assert len(ids) == len(set(ids)) == 693
    [(labelled,)] = warehouse_rows(
        "select count(*) from labels where job_name = $j and output_valid", j="intents-demo"
    )
    assert labelled == 693


def test_a_two_column_prompt_is_rendered_per_row_and_sent(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """`prompt:` over two columns: what each request sends is the row's rendered template."""
    demo = pl.read_csv(write_job(tmp_path, rows=30).parent / "intents.csv")
    words = pl.col("text").str.split(" ")
    source = demo.select(
        "id",
        title=words.list.head(3).list.join(" "),
        body=words.list.slice(3).list.join(" "),
        intent="intent",
    ).with_columns(
        body=pl.when(pl.col("id") == "u0005").then(None).otherwise("body"),  # null renders ""
        title=pl.when(pl.col("id") == "u0007").then(pl.lit("  ")).otherwise("title"),
    )
    source = source.with_columns(  # nothing at all in u0007: quarantined, never sent
        body=pl.when(pl.col("id") == "u0007").then(None).otherwise("body")
    )
    source.write_csv(tmp_path / "titled.csv")
    job_file = write_job(tmp_path, rows=30, source=str(tmp_path / "titled.csv"))
    keys = yaml.safe_load(job_file.read_text())
    del keys["text_column"]
    job_file.write_text(yaml.safe_dump(keys | {"prompt": "Title: {title}\n\n{body}"}))

    summary = batch_job(job_file=str(job_file))

    assert summary.final_states == {"succeeded": 29, "quarantined": 1}
    sent = {
        request["custom_id"]: request["params"]["messages"][0]["content"]
        for path in (tmp_path / "emulator" / "batches").glob("*/requests.jsonl")
        for request in map(json.loads, path.read_text().splitlines())
    }
    expected = {
        f"a1_{row['id']}": f"Title: {row['title']}\n\n{row['body'] or ''}"
        for row in source.iter_rows(named=True)
        if row["id"] != "u0007"
    }
    assert sent == expected and expected["a1_u0005"].endswith("\n\n")
    [(labelled,)] = warehouse_rows(
        "select count(*) from labels where job_name = $j and output_valid", j="intents-demo"
    )
    assert labelled == 29
    assert warehouse_rows(
        "select row_id, reason from row_outcomes where final_state = 'quarantined'"
    ) == [("u0007", "missing text: the prompt's column(s) 'title', 'body' are all empty or blank")]
    # the job reads back from its folder (status, `halfrate load`) with its prompt
    assert pipeline.load_staged("intents-demo", get_settings()).loaded == []


def test_rerun_resumes_without_submitting_again(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job_file = str(write_job(tmp_path, rows=40))
    first = batch_job(job_file=job_file)
    creates = len(emulator.admin.audit())
    again = batch_job(job_file=job_file)
    assert len(emulator.admin.audit()) == creates
    assert again.final_states == first.final_states == {"succeeded": 40}
    [(n,)] = warehouse_rows("select count(*) from results where job_name = $j", j="intents-demo")
    assert n == 40  # loading twice changed nothing

    restarted = batch_job(job_file=job_file, restart=True)
    assert len(emulator.admin.audit()) == 2 * creates  # a restart does send everything again
    assert restarted.batches == first.batches  # and the warehouse counts only the new run
    assert restarted.result_types == {"succeeded": 40}
    # The same work, except that the cache the first run wrote is still warm (1 h TTL).
    assert first.batch_cost_usd is not None and restarted.batch_cost_usd is not None
    assert 0 < restarted.batch_cost_usd <= first.batch_cost_usd


def test_faults_everywhere_still_end_every_row_in_a_final_state(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    transient = tuple(
        HttpFault(endpoint=e, status=s, count=1)
        for e in ("create", "retrieve", "list", "results")
        for s in (429, 500, 529)
    )
    emulator.admin.set_faults(
        FaultConfig(
            seed=7,
            errored_rate=0.15,
            expired_rate=0.05,
            http=transient,
            results_cut_after=25,
            results_cut_count=1,
            transient_404=1,
        )
    )
    summary = batch_job(job_file=str(write_job(tmp_path, rows=200)))

    assert summary.rows == 200
    assert set(summary.final_states) <= FINAL_STATES
    assert summary.attempts >= 2  # errored and expired rows went into a retry batch
    assert summary.final_states.get("succeeded", 0) >= 190
    ids = submitted_custom_ids(emulator)
    assert len(ids) == len(set(ids))  # nothing was submitted twice within an attempt
    [(rows, states)] = warehouse_rows(
        "select count(*), count(distinct row_id) from row_outcomes where job_name = $j",
        j="intents-demo",
    )
    assert rows == states == 200  # exactly one final state per input row
