"""The sensor's single check, and cancelling a job's batches."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from apitools import FAST_POLICY, Api, Job

from halfrate.ledger import BatchStatus
from halfrate.progress import (
    BatchesNotReady,
    BatchMissingError,
    BatchOverdueError,
    cancel_batches,
    check_batches,
)
from halfrate.submit import submit_pending


def submitted(api: Api, job: Job) -> list[str]:
    records = submit_pending(
        job.ledger, job.paths, api.gateway, attempt=1, policy=FAST_POLICY, sleep=api.sleeps
    )
    return [r.batch_id for r in records if r.batch_id]


def test_progress_until_every_batch_ended(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([3, 2])
    first, second = submitted(api, job)
    progress = check_batches(job.ledger, api.gateway, attempt=1)
    assert (progress.batches_total, progress.batches_ended, progress.all_ended) == (2, 0, False)
    assert progress.processing == 5
    assert progress.request_counts == {
        "processing": 5,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert progress.earliest_expires_at is not None and progress.oldest_created_at is not None
    assert "0/2 batches ended" in str(BatchesNotReady(progress))

    api.admin.force_end(first)
    progress = check_batches(job.ledger, api.gateway, attempt=1)
    assert (progress.batches_ended, progress.processing, progress.succeeded) == (1, 2, 3)
    assert job.ledger.records()[0].status is BatchStatus.ended

    api.admin.force_end(second)
    retrieves = api.wire.count("GET", second)
    progress = check_batches(job.ledger, api.gateway, attempt=1)
    assert progress.all_ended and progress.succeeded == 5 and progress.earliest_expires_at is None
    assert api.wire.count("GET", first) == 2  # an ended batch is not asked again
    assert api.wire.count("GET", second) == retrieves + 1


def test_counts_split_by_outcome(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"errored_custom_id_pattern": "r[01]$"})
    job = make_job([4])
    [batch_id] = submitted(api, job)
    api.admin.force_end(batch_id)
    progress = check_batches(job.ledger, api.gateway)
    assert (progress.succeeded, progress.errored) == (2, 2)


def test_retrieve_survives_429_and_529(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    [batch_id] = submitted(api, job)
    api.admin.force_end(batch_id)
    api.faults(http=[("retrieve", 429, 1), ("retrieve", 529, 1)])
    assert check_batches(job.ledger, api.gateway).all_ended


def test_a_batch_processing_long_past_expiry_is_an_error(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2])
    [batch_id] = submitted(api, job)
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(BatchOverdueError, match=batch_id):
        check_batches(job.ledger, api.gateway, now=lambda: later)


def test_unsubmitted_files_are_reported(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    progress = check_batches(job.ledger, api.gateway)
    assert (progress.batches_total, progress.unsubmitted) == (0, 1)


def test_cancel_sends_cancel_for_running_batches_and_tolerates_ended_ones(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3, 2])
    first, second = submitted(api, job)
    api.admin.force_end(first)  # ended on the server, the ledger does not know yet
    assert cancel_batches(job.ledger, api.gateway) == [second]
    records = job.ledger.records()
    assert records[0].status is BatchStatus.ended
    assert records[1].processing_status == "canceling"
    api.admin.advance_clock(60)
    progress = check_batches(job.ledger, api.gateway)
    assert progress.all_ended and progress.canceled == 2 and progress.succeeded == 3
    assert cancel_batches(job.ledger, api.gateway) == []


def test_a_batch_the_api_no_longer_knows_is_named(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    [batch_id] = submitted(api, job)
    api.admin.reset()  # the emulator forgets every batch (as if deleted)
    with pytest.raises(BatchMissingError, match=rf"{batch_id} .*part-0001\.jsonl.*404"):
        check_batches(job.ledger, api.gateway)
    assert sum(api.sleeps.delays) <= 60  # retried as a fresh batch, then gave up
