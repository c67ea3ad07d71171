"""A warehouse written before job kinds (a `labels` table) is brought up to date, nothing lost."""

from pathlib import Path

import staging

from halfrate.load import load_batch, load_job
from halfrate.sql import load_sql
from halfrate.warehouse import connect, ensure_schema

# The tables as the code before job kinds created them (commit cf15d03), abridged to what
# the migration touches, and a view that reads the old table.
OLD_SCHEMA = [
    """create table labels (
        job_name varchar not null, row_id varchar not null, custom_id varchar not null,
        batch_id varchar not null, attempt utinyint not null, result_type varchar not null,
        outcome varchar not null, label varchar, gold varchar, correct boolean,
        output_valid boolean, invalid_reason varchar, error_type varchar, error_message varchar
    )""",
    """create table results (
        batch_id varchar not null, custom_id varchar not null, job_name varchar not null,
        result_type varchar not null, message_id varchar, model varchar, text varchar,
        stop_reason varchar, input_tokens bigint, output_tokens bigint,
        cache_creation_input_tokens bigint, cache_write_5m_tokens bigint,
        cache_write_1h_tokens bigint, cache_read_input_tokens bigint, service_tier varchar,
        error_type varchar, error_message varchar, label varchar, output_valid boolean,
        invalid_reason varchar, outcome varchar not null
    )""",
    "create view row_outcomes as select job_name, row_id, label from labels",
    """insert into labels values
        ('old', 'r1', 'a1_r1', 'msgbatch_old', 1, 'succeeded', 'succeeded', 'card', 'card',
         true, true, null, null, null),
        ('old', 'r2', 'a1_r2', 'msgbatch_old', 1, 'succeeded', 'invalid_output', null, 'other',
         null, false, 'not JSON', null, null)""",
]


def test_an_old_labels_table_becomes_outcomes_and_the_labels_view(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = connect(db, retry_seconds=0)
    for statement in OLD_SCHEMA:
        con.execute(statement)
    ensure_schema(con)
    con.execute(
        "insert into jobs values ('old', 'label', 'claude-sonnet-5', 'f', '{}', 's', 3, 2, 0,"
        " now(), now(), default)"
    )
    con.execute("insert into job_rows values ('old', 'r1', 1, 'card'), ('old', 'r2', 2, 'other')")
    kinds = dict(
        con.execute("select table_name, table_type from information_schema.tables").fetchall()
    )
    assert (kinds["labels"], kinds["outcomes"]) == ("VIEW", "BASE TABLE")
    assert con.execute(
        "select row_id, output, output_valid, invalid_reason from outcomes order by row_id"
    ).fetchall() == [("r1", '{"label":"card"}', True, None), ("r2", None, False, "not JSON")]
    assert con.execute(
        "select row_id, label, gold, correct, outcome from labels order by row_id"
    ).fetchall() == [
        ("r1", "card", "card", True, "succeeded"),
        ("r2", None, "other", None, "invalid_output"),
    ]
    assert con.execute(
        "select row_id, final_state, label from row_outcomes order by row_id"
    ).fetchall() == [("r1", "succeeded", "card"), ("r2", "pending", None)]
    columns = [r[0] for r in con.execute("describe results").fetchall()]
    assert "label" not in columns and "output_valid" in columns
    ensure_schema(con)  # a second time: nothing left to migrate, nothing changes
    assert con.execute("select count(*) from outcomes").fetchone() == (2,)

    # and new loads land next to the migrated rows
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("x", "card")])
    record = staging.stage_batch(s, "b1", ["x"], [staging.succeeded("a1_x", '{"label":"card"}')])
    load_job(con, s.job, s.paths, s.ledger, s)
    load_batch(con, s.job, s.paths, record)
    assert con.execute(
        "select job_name, row_id, label, correct from labels order by all"
    ).fetchall() == [
        ("intents", "x", "card", True),
        ("old", "r1", "card", True),
        ("old", "r2", None, None),
    ]
    con.close()


# The tables as the code before request keys created them (commit 2128f43), abridged.
BEFORE_REQUEST_KEYS = [
    """create table jobs (
        job_name varchar primary key, kind varchar not null, model varchar not null,
        fingerprint varchar not null, config json not null, source varchar not null,
        max_attempts utinyint not null, n_rows integer, n_quarantined integer,
        created_at timestamp not null, updated_at timestamp not null
    )""",
    """create table requests (
        batch_id varchar not null, custom_id varchar not null, job_name varchar not null,
        row_id varchar not null, attempt utinyint not null
    )""",
    """create table outcomes (
        job_name varchar not null, row_id varchar not null, custom_id varchar not null,
        batch_id varchar not null, attempt utinyint not null, result_type varchar not null,
        outcome varchar not null, output varchar, output_valid boolean,
        invalid_reason varchar, error_type varchar, error_message varchar
    )""",
    """create table unsent_requests (
        job_name varchar not null, custom_id varchar not null, row_id varchar not null,
        attempt utinyint not null, request_file varchar not null, reason varchar not null,
        primary key (job_name, custom_id)
    )""",
    "insert into jobs values ('old', 'label', 'm', 'f', '{}', 's', 3, 1, 0, now(), now())",
    "insert into requests values ('b0', 'a1_r1', 'old', 'r1', 1)",
    """insert into outcomes values
        ('old', 'r1', 'a1_r1', 'b0', 1, 'succeeded', 'succeeded', '{"label":"x"}', true,
         null, null, null)""",
    "insert into job_rows values ('old', 'r1', 1, null)",
]


def test_a_warehouse_before_request_keys_gains_them_with_one_request_per_row(
    tmp_path: Path,
) -> None:
    con = connect(tmp_path / "old.duckdb", retry_seconds=0)
    con.execute(load_sql("schema/job_rows"))
    for statement in BEFORE_REQUEST_KEYS:
        con.execute(statement)
    ensure_schema(con)
    ensure_schema(con)
    assert con.execute("select request_keys from jobs").fetchall() == [([""],)]
    assert con.execute("select request from requests").fetchall() == [("",)]
    assert con.execute("select request from outcomes").fetchall() == [("",)]
    assert con.execute("describe unsent_requests").fetchall()[-1][:2] == ("request", "VARCHAR")
    assert con.execute("select row_id, final_state, label from row_outcomes").fetchall() == [
        ("r1", "succeeded", "x")
    ]
    con.close()
