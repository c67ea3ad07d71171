"""Raw results first, verified against the request file's index before they count."""

from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx2
import orjson
import pytest
from apitools import FAST_POLICY, Api, Job

from halfrate.download import (
    DownloadError,
    DownloadVerificationError,
    ResultsUnavailableError,
    download_ended,
    verify_results,
)
from halfrate.gateway import BatchGateway
from halfrate.ledger import BatchStatus
from halfrate.progress import check_batches
from halfrate.submit import submit_pending


def ended(api: Api, job: Job) -> list[str]:
    records = submit_pending(
        job.ledger, job.paths, api.gateway, attempt=1, policy=FAST_POLICY, sleep=api.sleeps
    )
    ids = [r.batch_id for r in records if r.batch_id]
    for batch_id in ids:
        api.admin.force_end(batch_id)
    assert check_batches(job.ledger, api.gateway).all_ended
    return ids


def download(api: Api, job: Job, **kwargs: object) -> list:  # type: ignore[type-arg]
    return download_ended(job.ledger, job.paths, api.gateway, sleep=api.sleeps, **kwargs)  # type: ignore[arg-type]


def result_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["custom_id"] for line in path.read_bytes().splitlines()]


def test_download_verifies_and_is_not_repeated(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([4, 3])
    first, second = ended(api, job)
    summaries = download(api, job)
    assert [s.batch_id for s in summaries] == [first, second]
    assert [(s.lines, s.succeeded, s.downloads) for s in summaries] == [(4, 4, 1), (3, 3, 1)]
    for summary, file in zip(summaries, job.files, strict=True):
        path = job.paths.root / summary.results_file
        assert sorted(result_ids(path)) == sorted(job.custom_ids(file))
        assert summary.bytes == path.stat().st_size
        assert not path.with_name(path.name + ".part").exists()
    assert [r.status for r in job.ledger.records()] == [BatchStatus.downloaded] * 2

    gets = api.wire.count("GET", "/results")
    again = download(api, job)
    assert [s.downloads for s in again] == [0, 0]
    assert api.wire.count("GET", "/results") == gets == 2


def test_the_download_reuses_the_poll_that_saw_the_batch_end(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"results_cut_after": 2, "results_cut_count": 1})
    job = make_job([5])
    [batch_id] = ended(api, job)  # the last poll retrieved it, ended
    retrieves = api.wire.count("GET", batch_id)
    [summary] = download(api, job)
    assert summary.downloads == 2  # the first stream was cut
    # One retrieve for two downloads: the first reused the poll's, the second asked again.
    assert api.wire.count("GET", batch_id) == retrieves + 1
    assert api.wire.count("GET", "/results") == 2

    fresh = BatchGateway(api.client)  # another process knows nothing of the poll: it asks
    again = make_job([3], name="again")
    [other] = ended(Api(api.server, api.client, fresh, api.wire, api.sleeps), again)
    before = api.wire.count("GET", other)
    download_ended(again.ledger, again.paths, BatchGateway(api.client), sleep=api.sleeps)
    assert api.wire.count("GET", other) == before + 1


def test_all_four_result_types_verify(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"errored_custom_id_pattern": "r1$"})
    job = make_job([3, 2])
    first, _ = ended(api, job)
    [summary] = [s for s in download(api, job, attempt=1) if s.batch_id == first]
    assert (summary.succeeded, summary.errored) == (2, 1)
    # canceled and expired: a new job whose batches are cancelled or expire before running
    other = make_job([2, 2], name="other")
    records = submit_pending(
        other.ledger, other.paths, api.gateway, attempt=1, policy=FAST_POLICY, sleep=api.sleeps
    )
    api.gateway.cancel(records[0].batch_id)  # type: ignore[arg-type]
    api.admin.force_expire(records[1].batch_id)
    api.admin.advance_clock(60)
    assert check_batches(other.ledger, api.gateway).all_ended
    summaries = download(api, other)
    assert [(s.canceled, s.expired) for s in summaries] == [(2, 0), (0, 2)]


def test_a_cut_stream_is_downloaded_again(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"results_cut_after": 2, "results_cut_count": 1})
    job = make_job([5])
    ended(api, job)
    [summary] = download(api, job)
    assert summary.downloads == 2 and summary.lines == 5
    assert sorted(result_ids(job.paths.root / summary.results_file)) == sorted(job.all_custom_ids())
    assert api.sleeps.delays == [1.0]


def test_a_stream_cut_every_time_keeps_nothing(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"results_cut_after": 2, "results_cut_count": 10})
    job = make_job([5])
    [batch_id] = ended(api, job)
    with pytest.raises(DownloadVerificationError, match=rf"batch {batch_id} .*3 tries"):
        download(api, job)
    assert not list((job.paths.root / "results").glob("*"))
    assert job.ledger.records()[0].status is BatchStatus.ended


def test_results_endpoint_errors_are_survived(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([3])
    ended(api, job)
    api.faults(http=[("results", 429, 1), ("results", 500, 1), ("results", 529, 1)])
    [summary] = download(api, job)
    assert summary.lines == 3


def test_a_batch_we_created_whose_results_are_not_the_files_is_named(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    file = job.files[0]
    stranger = make_job([3], name="stranger")  # same size, other custom_ids, unknown ledger
    stranger_file = stranger.files[0]
    (stranger.paths.root / stranger_file.path).write_bytes(
        (stranger.paths.root / stranger_file.path).read_bytes().replace(b'"a1_r', b'"a1_s')
    )
    wrong = api.gateway.create_from_file(
        stranger.paths.root / stranger_file.path, stranger_file.body_bytes
    )
    job.ledger.record_intent(file.path)  # as if halfrate had created it (no adoption note)
    job.ledger.record_batch(file.path, wrong.model_dump(mode="json"))
    [batch_id] = ended(api, job)
    assert batch_id == wrong.id
    with pytest.raises(DownloadVerificationError) as caught:
        download(api, job)
    message = str(caught.value)
    assert f"batch {wrong.id} is not the batch of {file.path}" in message
    assert "a1_s0" in message and "a1_r0" in message
    assert "halfrate adopt" in message
    assert api.wire.count("GET", "/results") == 1  # not a transfer problem: no retry
    assert job.ledger.record(file.path).batch_id == wrong.id  # ours: never released


def test_results_past_retention_are_a_clear_error(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    [batch_id] = ended(api, job)
    api.admin.advance_clock(30 * 86400)
    with pytest.raises(ResultsUnavailableError, match=rf"{batch_id}.*29 days"):
        download(api, job)


def test_a_verified_file_left_by_a_crash_is_kept(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([3])
    [batch_id] = ended(api, job)
    download(api, job)
    job.ledger.set_status(batch_id, BatchStatus.ended)  # crashed before the status update
    [summary] = download(api, job)
    assert summary.downloads == 0
    assert api.wire.count("GET", "/results") == 1
    assert job.ledger.records()[0].status is BatchStatus.downloaded


def test_a_missing_index_is_named(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    ended(api, job)
    job.paths.index_file(job.files[0].path).unlink()
    with pytest.raises(DownloadError, match=r"part-0001\.index\.parquet is missing"):
        download(api, job)


def write_index(job: Job) -> Path:
    return job.paths.index_file(job.files[0].path)


def line(custom_id: str, kind: str = "succeeded") -> bytes:
    return orjson.dumps({"custom_id": custom_id, "result": {"type": kind}}) + b"\n"


COUNTS = {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 0}


def test_verify_accepts_a_complete_file(make_job: Callable[..., Job], tmp_path: Path) -> None:
    job = make_job([3])
    results = tmp_path / "r.jsonl"
    results.write_bytes(line("a1_r2") + line("a1_r0") + line("a1_r1"))
    check = verify_results(results, write_index(job), COUNTS)
    assert check.ok and check.lines == 3


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (line("a1_r0") + line("a1_r1"), "1 custom_ids missing (e.g. a1_r2)"),
        (line("a1_r0") + line("a1_r1") + line("a1_r1"), "returned twice (e.g. a1_r1)"),
        (line("a1_r0") + line("a1_r1") + line("zz"), "never sent (e.g. zz)"),
        (
            line("a1_r0") + b"\n" + line("a1_r1") + line("a1_r2"),
            "blank or malformed lines (line 2)",
        ),
        (line("a1_r0") + line("a1_r1") + b'{"custom_id":"a1_r2","res', "malformed lines (line 3)"),
        (line("a1_r0") + line("a1_r1") + line("a1_r2", "weird"), "malformed"),
        (line("a1_r0") + line("a1_r1") + line("a1_r2", "errored"), "2 succeeded results, but"),
    ],
)
def test_verify_names_each_problem(
    make_job: Callable[..., Job], tmp_path: Path, data: bytes, problem: str
) -> None:
    job = make_job([3])
    results = tmp_path / "r.jsonl"
    results.write_bytes(data)
    check = verify_results(results, write_index(job), COUNTS)
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems


def test_verify_checks_the_line_count_against_the_batch(
    make_job: Callable[..., Job], tmp_path: Path
) -> None:
    job = make_job([3])
    results = tmp_path / "r.jsonl"
    results.write_bytes(line("a1_r2") + line("a1_r0") + line("a1_r1"))
    check = verify_results(results, write_index(job), {**COUNTS, "succeeded": 4})
    assert "3 lines, but the batch holds 4 requests" in check.problems


def test_a_silently_short_download_is_caught_and_redone(
    make_job: Callable[..., Job], tmp_path: Path
) -> None:
    """A stream that ends cleanly but early (no transport error) fails verification, is redone."""
    job = make_job([3])
    file = job.files[0]
    batch = {
        "id": "msgbatch_01ShortStream00000000000",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 3,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2026-11-24T06:00:00Z",
        "expires_at": "2026-11-25T06:00:00Z",
        "ended_at": "2026-11-24T06:01:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": "/v1/messages/batches/msgbatch_01ShortStream00000000000/results",
    }
    full = line("a1_r1") + line("a1_r0") + line("a1_r2")
    bodies = [full[: len(line("a1_r1")) + 10], full]

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/results"):
            return httpx2.Response(200, content=bodies.pop(0))
        return httpx2.Response(200, json=batch)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(api_key="k", base_url="http://fake.local", http_client=http)
    job.ledger.record_intent(file.path)
    job.ledger.record_batch(file.path, batch)
    job.ledger.update_progress(batch)
    sleeps: list[float] = []
    [summary] = download_ended(job.ledger, job.paths, BatchGateway(client), sleep=sleeps.append)
    assert summary.downloads == 2 and summary.lines == 3
    assert (job.paths.root / summary.results_file).read_bytes() == full
    assert bodies == [] and sleeps == [1.0]
