"""Item 3: an adoption is a hypothesis until the batch's results prove it.

After a create of unknown outcome, reconciliation may find a batch of the same size that
another client made on the same workspace. When that batch ends, its results' custom_ids are
checked against the request file: on a mismatch it is released as foreign (recorded, never
adopted again, never canceled), the file goes back to an intent, and the next submit
reconciles again and sends it. `halfrate adopt` can attach a batch to a file in any state it
can describe, checking what it can.
"""

from collections import Counter
from collections.abc import Callable

import anthropic
import orjson
import pytest
from apitools import FAST_POLICY, Api, Job, request_line

from halfrate.adopt import adopt_batch
from halfrate.download import download_ended
from halfrate.ledger import BatchStatus
from halfrate.progress import check_batches
from halfrate.submit import ADOPTED_NOTE, RECONCILED_NOTE, SubmissionError, submit_pending
from halfrate_emulator import FaultConfig, HttpFault


def submit(api: Api, job: Job, sleep: Callable[[float], None] | None = None) -> list:  # type: ignore[type-arg]
    return submit_pending(
        job.ledger, job.paths, api.gateway, attempt=1, policy=FAST_POLICY, sleep=sleep or api.sleeps
    )


def end_and_download(api: Api, job: Job) -> list:  # type: ignore[type-arg]
    for record in job.ledger.records():
        if record.batch_id:
            api.admin.force_end(record.batch_id)
    assert check_batches(job.ledger, api.gateway).all_ended
    return download_ended(job.ledger, job.paths, api.gateway, sleep=api.sleeps)


def other_client_batch(api: Api, size: int) -> str:
    """A batch of `size` requests made by someone else on the same workspace (its own key)."""
    other = anthropic.Anthropic(api_key="someone-else", base_url=api.server.base_url)
    lines = [request_line(f"theirs_{i}", f"their text {i}") for i in range(size)]
    requests = [orjson.loads(line) for line in lines]
    return other.messages.batches.create(requests=requests).id


def test_an_adoption_its_results_disprove_is_released_and_the_file_sent_again(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([1])
    file = job.files[0]
    # Our create gets a bare 502 (no API error body: outcome unknown, but nothing was made);
    # while we wait for the list to settle, another client creates a 1-request batch.
    api.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="create", status=502, count=1, bare=True),))
    )
    theirs: list[str] = []

    def sleep(seconds: float) -> None:
        if not theirs:
            theirs.append(other_client_batch(api, 1))

    [record] = submit(api, job, sleep)
    assert (record.batch_id, record.note) == (theirs[0], RECONCILED_NOTE)  # the wrong guess

    assert end_and_download(api, job) == []  # nothing verified: the adoption was wrong
    after = job.ledger.record(file.path)
    assert after.status is BatchStatus.intent and after.batch_id is None
    assert job.ledger.foreign_batch_ids() == {theirs[0]}

    [record] = submit(api, job)  # reconciles again (theirs excluded), finds none, sends
    assert record.batch_id not in (None, theirs[0]) and record.note is None
    [summary] = end_and_download(api, job)
    assert summary.batch_id == record.batch_id and summary.lines == 1
    ours = [
        c for e in api.admin.audit(custom_ids=True) for c in e["custom_ids"] if c.startswith("a1_")
    ]
    assert Counter(ours) == Counter(job.all_custom_ids())  # each of ours sent exactly once
    # Their batch was never canceled: it ended on its own, all its requests processed.
    assert not any(r["path"].endswith("/cancel") for r in api.admin.requests())
    assert api.gateway.retrieve(theirs[0]).request_counts.canceled == 0


def test_after_a_crash_another_clients_batch_is_adopted_then_released(
    api: Api, make_job: Callable[..., Job]
) -> None:
    """The process died after recording its intent, before its create left; meanwhile another
    client made a batch of the same size. The rerun adopts it, then its results disprove it."""
    job = make_job([3])
    file = job.files[0]
    job.ledger.record_intent(file.path)
    theirs = other_client_batch(api, 3)
    [record] = submit(api, job)
    assert record.batch_id == theirs
    assert end_and_download(api, job) == []
    assert job.ledger.foreign_batch_ids() == {theirs}
    [record] = submit(api, job)
    [summary] = end_and_download(api, job)
    assert summary.batch_id == record.batch_id != theirs
    assert sorted(c for e in api.admin.audit(custom_ids=True) for c in e["custom_ids"]) == sorted(
        job.all_custom_ids() + [f"theirs_{i}" for i in range(3)]
    )


def test_adopt_attaches_a_batch_to_a_file_with_no_record(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2])
    file = job.files[0]
    made = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    record = adopt_batch(job.ledger, job.paths, api.gateway, file.path, made.id)
    assert (record.status, record.batch_id, record.note) == (
        BatchStatus.submitted,
        made.id,
        ADOPTED_NOTE,
    )
    assert submit(api, job)[0].batch_id == made.id
    assert len(api.admin.audit()) == 1


def test_adopt_replaces_a_wrong_adoption_and_releases_it_as_foreign(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([1])
    file = job.files[0]
    wrong = other_client_batch(api, 1)
    job.ledger.record_intent(file.path)
    [record] = submit(api, job)  # reconciles: adopts the other client's batch
    assert record.batch_id == wrong
    right = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    record = adopt_batch(job.ledger, job.paths, api.gateway, file.path, right.id)
    assert record.batch_id == right.id
    assert job.ledger.foreign_batch_ids() == {wrong}
    [summary] = end_and_download(api, job)
    assert summary.batch_id == right.id


def test_adopt_checks_the_custom_ids_of_an_ended_batch(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([1])
    file = job.files[0]
    wrong = other_client_batch(api, 1)
    api.admin.force_end(wrong)
    with pytest.raises(SubmissionError, match=rf"{wrong} is not the batch of .*custom_ids"):
        adopt_batch(job.ledger, job.paths, api.gateway, file.path, wrong)
    assert job.ledger.record(file.path).status is None
    bigger = make_job([3], name="bigger")
    with pytest.raises(SubmissionError, match=r"holds 1 requests but .* has 3"):
        adopt_batch(bigger.ledger, bigger.paths, api.gateway, bigger.files[0].path, wrong)


def test_adopt_refuses_a_foreign_batch_and_a_verified_file(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([1])
    file = job.files[0]
    job.ledger.record_intent(file.path)
    wrong = other_client_batch(api, 1)
    submit(api, job)
    end_and_download(api, job)  # releases it
    with pytest.raises(SubmissionError, match="found not to be"):
        adopt_batch(job.ledger, job.paths, api.gateway, file.path, wrong)
    submit(api, job)
    end_and_download(api, job)
    other = other_client_batch(api, 1)
    with pytest.raises(SubmissionError, match="verified against the file"):
        adopt_batch(job.ledger, job.paths, api.gateway, file.path, other)
