"""The yardstick: a plain Message Batches script in the style of Anthropic's cookbook.

    python bench/plain_sdk_script.py ROWS.parquet WAREHOUSE.duckdb INSTRUCTIONS.txt LABELS [INSERT]

Reads the rows, creates batches of 10,000 requests with the SDK (`batches.create(requests=...)`),
polls every HALFRATE_POLL_INTERVAL seconds (1 by default) until they end, iterates the results
with the SDK and inserts one row per result into DuckDB: with `executemany` (INSERT
`executemany`, the default: what DuckDB's Python docs show for rows held in Python) or as one
Arrow table per batch (INSERT `arrow`: a tuned script). The same requests halfrate sends for a
label job (cached system prompt, structured output with the labels as an enum), no retries, no
checks, no ledger. The API key and base URL come from ANTHROPIC_API_KEY and
ANTHROPIC_BASE_URL, as for halfrate.
"""

import json
import os
import sys
import time

import anthropic
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 10_000  # requests per batch: well under 100,000 requests and 256 MB
MODEL = "claude-haiku-4-5"


def requests(rows: pa.Table, instructions: str, labels: list[str]) -> list[dict[str, object]]:
    system = [
        {"type": "text", "text": instructions, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }
    output = {"format": {"type": "json_schema", "schema": schema}}
    return [
        {
            "custom_id": f"row-{i}",
            "params": {
                "model": MODEL,
                "max_tokens": 32,
                "system": system,
                "messages": [{"role": "user", "content": text}],
                "output_config": output,
            },
        }
        for i, text in enumerate(rows.column("text").to_pylist())
    ]


def insert(con: duckdb.DuckDBPyConnection, rows: list[tuple[object, ...]], how: str) -> None:
    if how == "executemany":
        con.executemany("insert into results values (?, ?, ?, ?, ?)", rows)
        return
    names = ("row_id", "result_type", "label", "input_tokens", "output_tokens")
    columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 5
    con.register("batch_rows", pa.table(dict(zip(names, columns, strict=True))))
    con.execute("insert into results select * from batch_rows")
    con.unregister("batch_rows")


def main() -> None:
    source, warehouse, instructions_file, labels = sys.argv[1:5]
    how = sys.argv[5] if len(sys.argv) > 5 else "executemany"
    poll = float(os.environ.get("HALFRATE_POLL_INTERVAL", "1"))
    client = anthropic.Anthropic()
    rows = pq.read_table(source)
    ids = rows.column("row_id").to_pylist()
    with open(instructions_file) as fh:
        todo = requests(rows, fh.read(), labels.split(","))
    batch_ids = [
        client.messages.batches.create(requests=todo[i : i + CHUNK]).id  # type: ignore[arg-type]
        for i in range(0, len(todo), CHUNK)
    ]
    del todo
    pending = set(batch_ids)
    while pending:
        time.sleep(poll)
        pending = {
            b for b in pending if client.messages.batches.retrieve(b).processing_status != "ended"
        }
    con = duckdb.connect(warehouse)
    con.execute(
        "create table if not exists results (row_id varchar, result_type varchar, label varchar,"
        " input_tokens integer, output_tokens integer)"
    )
    for batch_id in batch_ids:
        rows_out = []
        for result in client.messages.batches.results(batch_id):
            label = inp = outp = None
            if result.result.type == "succeeded":
                message = result.result.message
                label = json.loads(message.content[0].text).get("label")  # type: ignore[union-attr]
                inp, outp = message.usage.input_tokens, message.usage.output_tokens
            row_id = ids[int(result.custom_id.removeprefix("row-"))]
            rows_out.append((row_id, result.result.type, label, inp, outp))
        insert(con, rows_out, how)
    print(con.execute("select result_type, count(*) from results group by all").fetchall())
    con.close()


if __name__ == "__main__":
    main()
