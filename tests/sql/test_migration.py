"""A warehouse written before job kinds (a `labels` table) is brought up to date, nothing lost."""

from pathlib import Path

import staging

from halfrate.load import load_batch, load_job
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
