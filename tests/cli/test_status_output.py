"""`halfrate status JOB` reads whole on any terminal: a table when it fits, else lines that
never cut a batch id or a path (a user copies them into `halfrate adopt`)."""

from rich.console import Console

from cli.status_view import print_job_status

BATCH = "msgbatch_013H3u63JN1GefzD4BpLem2K"
ROWS = [
    ("1", "prime", "requests/a1/prime.jsonl", "1", "msgbatch_01TmJNUDacsuoqLNq8eiQv3C",
     "loaded", "succeeded 1", "2026-11-30T22:40:26"),
    ("1", "main", "requests/a1/part-0001.jsonl", "692", BATCH, "submitted", "processing 692",
     "2026-11-30T22:40:30"),
    ("2", "main", "requests/a2/part-0001.jsonl", "9", "-", "built", "-", "-"),
]  # fmt: skip


def shown(width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    print_job_status(console, "intents-demo", ROWS)
    return console.export_text()


def test_a_narrow_terminal_gets_whole_lines_not_cut_cells() -> None:
    out = shown(80)
    assert "…" not in out and all(len(line) <= 80 for line in out.splitlines())
    assert f"\n  submitted  {BATCH}\n  processing 692 · expires 2026-11-30T22:40:30\n" in out
    assert "requests/a1/part-0001.jsonl  (attempt 1, main, 692 requests)" in out
    assert out.endswith("requests/a2/part-0001.jsonl  (attempt 2, main, 9 requests)\n  built  -\n")


def test_a_wide_terminal_gets_the_table() -> None:
    out = shown(200)
    assert "┃ attempt ┃ purpose ┃" in out.replace(" ┃ ", " ┃ ")
    assert BATCH in out and "requests/a1/part-0001.jsonl" in out and "…" not in out
