"""Exactly-once submit: intents, lost responses, crashes, ambiguity, refusals."""

from collections import Counter
from collections.abc import Callable

import pytest
from apitools import FAST_POLICY, Api, Job

from halfrate.adopt import adopt_batch
from halfrate.ledger import BatchStatus
from halfrate.submit import (
    RECONCILED_NOTE,
    AmbiguousSubmissionError,
    SubmissionRefusedError,
    SubmissionUnknownError,
    SubmitPolicy,
    submit_pending,
)
from halfrate.workspace import JobConflictError, job_lock
from halfrate_emulator import FaultConfig, HttpFault


def submit(api: Api, job: Job, **kwargs: object) -> list:  # type: ignore[type-arg]
    kwargs.setdefault("policy", FAST_POLICY)
    return submit_pending(job.ledger, job.paths, api.gateway, attempt=1, sleep=api.sleeps, **kwargs)


def assert_each_custom_id_submitted_once(api: Api, job: Job) -> None:
    counts = Counter(api.submitted_ids())
    assert counts == Counter(job.all_custom_ids())
    assert set(counts.values()) == {1}


def test_submits_every_file_once_and_a_rerun_sends_nothing(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3, 2, 4])
    records = submit(api, job)
    assert [r.status for r in records] == [BatchStatus.submitted] * 3
    assert len({r.batch_id for r in records}) == 3
    assert [r.request_counts["processing"] for r in records] == [3, 2, 4]  # type: ignore[index]
    assert_each_custom_id_submitted_once(api, job)
    creates = len(api.wire.creates())
    assert submit(api, job) == records
    assert len(api.wire.creates()) == creates == 3
    assert all(retry == "0" for _, _, retry in api.wire.creates())


def test_only_the_asked_purpose_is_sent(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2, 2])
    assert submit(api, job, purpose="prime") == []
    assert api.wire.creates() == []


def test_lost_create_response_is_reconciled_not_resent(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"lose_create_responses": 1})
    job = make_job([3, 2])
    records = submit(api, job)
    [first_create] = api.admin.audit()[:1]
    assert first_create["response_dropped"] is True
    assert records[0].batch_id == first_create["batch_id"]
    assert records[0].note == RECONCILED_NOTE
    assert records[1].note is None
    assert len(api.admin.audit()) == 2
    assert_each_custom_id_submitted_once(api, job)


def test_crash_after_the_create_is_adopted_on_the_next_run(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    file = job.files[0]
    job.ledger.record_intent(file.path)
    created = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    # the process died here, before record_batch
    [record] = submit(api, job)
    assert record.batch_id == created.id
    assert record.note == RECONCILED_NOTE
    assert len(api.wire.creates()) == 1
    assert_each_custom_id_submitted_once(api, job)


def test_intent_without_a_batch_is_sent_exactly_once(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    job.ledger.record_intent(job.files[0].path)  # crashed before the create left
    [record] = submit(api, job)
    assert record.status is BatchStatus.submitted
    assert record.note is None
    assert len(api.wire.creates()) == 1
    assert_each_custom_id_submitted_once(api, job)
    assert api.sleeps.delays == [0.0]  # the second listing, after the propagation delay


def test_another_jobs_batch_of_the_same_size_is_not_adopted(
    api: Api, make_job: Callable[..., Job]
) -> None:
    other = make_job([3], name="other")
    submit(api, other)
    other_id = other.ledger.records()[0].batch_id
    job = make_job([3])
    job.ledger.record_intent(job.files[0].path)
    [record] = submit(api, job, known_batch_ids=lambda: {other_id})
    assert record.batch_id != other_id
    assert record.note is None
    assert len(api.admin.audit()) == 2


def test_several_candidates_raise_and_send_nothing(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([3])
    file = job.files[0]
    job.ledger.record_intent(file.path)
    ids = [
        api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes).id
        for _ in range(2)
    ]
    with pytest.raises(AmbiguousSubmissionError) as caught:
        submit(api, job)
    assert sorted(caught.value.candidates) == sorted(ids)
    message = str(caught.value)
    assert file.path in message and all(i in message for i in ids)
    assert "halfrate adopt" in message
    assert len(api.wire.creates()) == 2  # nothing more was sent
    assert job.ledger.record(file.path).status is BatchStatus.intent

    record = adopt_batch(job.ledger, job.paths, api.gateway, file.path, ids[1])
    assert record.batch_id == ids[1]
    assert submit(api, job)[0].batch_id == ids[1]
    assert len(api.wire.creates()) == 2


def test_adopting_a_batch_of_another_size_is_refused(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3, 2])
    big, small = job.files
    job.ledger.record_intent(big.path)
    other = api.gateway.create_from_file(job.paths.root / small.path, small.body_bytes)
    with pytest.raises(RuntimeError, match=r"holds 2 requests but .*part-0001.jsonl has 3"):
        adopt_batch(job.ledger, job.paths, api.gateway, big.path, other.id)


def test_400_clears_the_intent_and_names_the_file(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    path = job.paths.root / job.files[0].path
    path.write_bytes(path.read_bytes().replace(b'"a1_r0"', b'"a1 r0"'))  # same size, bad id
    with pytest.raises(SubmissionRefusedError, match=r"part-0001\.jsonl: the API refused.*400"):
        submit(api, job)
    assert job.ledger.records()[0].status is None
    assert api.admin.audit() == []


def test_a_changed_request_file_is_refused_before_sending(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2])
    (job.paths.root / job.files[0].path).write_bytes(b'{"custom_id":"a1_x","params":{}}\n')
    with pytest.raises(SubmissionRefusedError, match="changed after it was built"):
        submit(api, job)
    assert api.wire.creates() == []
    assert job.ledger.records()[0].status is None


def test_creates_of_unknown_outcome_give_up_safely(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([3])
    api.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="create", status=502, count=100, bare=True),))
    )
    with pytest.raises(SubmissionUnknownError, match=r"part-0001\.jsonl.*safe to rerun"):
        submit(api, job, policy=SubmitPolicy(propagation_delay=0, rounds=2, backoff=(0.0,)))
    assert len(api.wire.creates()) == 2
    assert api.wire.count("GET", "/v1/messages/batches") == 2  # reconciled before resending
    assert api.admin.audit() == []
    api.faults()
    [record] = submit(api, job)
    assert record.status is BatchStatus.submitted
    assert_each_custom_id_submitted_once(api, job)


def test_an_intent_is_kept_while_the_list_endpoint_is_down(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    file = job.files[0]
    job.ledger.record_intent(file.path)
    created = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    api.faults(http=[("list", 500, 1000)])
    with pytest.raises(SubmissionUnknownError, match="intent is kept"):
        submit(api, job)
    assert job.ledger.record(file.path).status is BatchStatus.intent
    assert len(api.wire.creates()) == 1
    api.faults()
    [record] = submit(api, job)
    assert record.batch_id == created.id
    assert len(api.wire.creates()) == 1


def test_submit_holds_the_job_lock(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([1])
    with job_lock(job.paths), pytest.raises(JobConflictError):
        submit(api, job)
    assert api.wire.creates() == []
