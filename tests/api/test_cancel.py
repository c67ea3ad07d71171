"""Item 5 (core): a user's cancel is recorded before the API is asked, and stops every create."""

from collections.abc import Callable
from pathlib import Path

import pytest
from apitools import FAST_POLICY, Api, Job

from halfrate.errors import APIError
from halfrate.gateway import BatchGateway
from halfrate.ledger import BatchStatus
from halfrate.progress import cancel_batches, check_batches
from halfrate.submit import submit_pending


def submit(api: Api, job: Job, gateway: BatchGateway | None = None) -> list:  # type: ignore[type-arg]
    return submit_pending(
        job.ledger,
        job.paths,
        gateway or api.gateway,
        attempt=1,
        policy=FAST_POLICY,
        sleep=api.sleeps,
    )


def test_a_cancel_is_recorded_first_and_stops_every_later_create(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2, 2])
    first = job.files[0]
    record = api.gateway.create_from_file(job.paths.root / first.path, first.body_bytes)
    job.ledger.record_intent(first.path)
    job.ledger.record_batch(first.path, record.model_dump(mode="json"))
    api.faults(http=[("cancel", 500, 100)])  # the API cannot be reached to cancel
    with pytest.raises(APIError, match="cancel: 500"):
        cancel_batches(job.ledger, api.gateway)
    assert job.ledger.cancel_requested() is not None  # recorded before the API was asked
    assert set(job.ledger.user_cancels()) == {record.id}
    api.faults()
    records = submit(api, job)
    assert [r.batch_id is not None for r in records] == [True, False]
    assert len(api.admin.audit()) == 1  # the second file is not sent after the cancel


class _CancelDuringCreate(BatchGateway):
    """`halfrate cancel` runs while this process's create is on its way."""

    def create_from_file(self, path: Path, body_bytes: int):  # type: ignore[no-untyped-def]
        batch = super().create_from_file(path, body_bytes)
        cancel_batches(self.ledger, self)  # sees no submitted batch yet: this one is unrecorded
        return batch


def test_a_batch_created_while_the_cancel_ran_is_canceled_too(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2, 2])
    racing = _CancelDuringCreate(api.client, sleep=api.sleeps)
    racing.ledger = job.ledger  # type: ignore[attr-defined]
    [made, skipped] = submit(api, job, racing)
    assert skipped.batch_id is None and len(api.admin.audit()) == 1
    assert set(job.ledger.user_cancels()) == {made.batch_id}
    api.admin.advance_clock(60)
    check_batches(job.ledger, api.gateway)
    batch = api.gateway.retrieve(made.batch_id)  # type: ignore[arg-type]
    assert batch.cancel_initiated_at is not None
    assert job.ledger.record(made.file.path).status is BatchStatus.ended
