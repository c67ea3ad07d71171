"""Item 2 and 6: a create the API refused made no batch; a 413 is split, not a dead end.

An answer of the API itself (a 429, any 4xx, a 5xx with the API's error body) means no batch
was created: halfrate never reconciles it as an unknown outcome. A passing refusal is sent
again after its retry-after; the spend limit stops at once and says so. A file the API refuses
as too large is sent in halves, recursively, crash-safe; a single request still too large
ends `failed` with the reason.
"""

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from apitools import FAST_POLICY, Api, Job

from halfrate.gateway import BatchGateway
from halfrate.ledger import BatchStatus
from halfrate.submit import (
    RECONCILED_NOTE,
    SpendLimitError,
    SubmissionBusyError,
    SubmissionRefusedError,
    submit_pending,
)
from halfrate_emulator import FaultConfig, HttpFault


def submit(api: Api, job: Job, gateway: BatchGateway | None = None) -> list:  # type: ignore[type-arg]
    return submit_pending(
        job.ledger,
        job.paths,
        gateway or api.gateway,
        attempt=1,
        sleep=api.sleeps,
        policy=FAST_POLICY,
    )


def listings(api: Api) -> int:
    return api.wire.count("GET", "/v1/messages/batches")


def assert_each_custom_id_submitted_once(api: Api, job: Job) -> None:
    counts = Counter(c for e in api.admin.audit(custom_ids=True) for c in e["custom_ids"])
    assert counts == Counter(job.all_custom_ids()) and set(counts.values()) == {1}


@pytest.mark.parametrize("status", [429, 500, 529, 503])
def test_a_create_turned_away_is_sent_again_without_reconciling(
    api: Api, make_job: Callable[..., Job], status: int
) -> None:
    job = make_job([3])
    api.faults(http=[("create", status, 1)])
    [record] = submit(api, job)
    assert record.status is BatchStatus.submitted and record.note is None
    assert listings(api) == 0  # an API error body means no batch: nothing to reconcile
    assert len(api.wire.creates()) == 2
    assert_each_custom_id_submitted_once(api, job)


def test_retry_after_is_honoured_before_sending_again(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2])
    api.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="create", status=429, count=1),), retry_after=2.5)
    )
    submit(api, job)
    assert api.sleeps.delays == [2.5]


def test_a_create_turned_away_for_good_gives_up_safely(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2])
    api.faults(http=[("create", 429, 100)])
    with pytest.raises(SubmissionBusyError, match=r"no batch was created.*safe to rerun"):
        submit(api, job)
    assert listings(api) == 0 and api.admin.audit() == []
    assert job.ledger.records()[0].status is None  # nothing pending: the next run just sends


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, "fix the request"), (401, "ANTHROPIC_API_KEY"), (403, "ANTHROPIC_API_KEY")],
)
def test_a_refused_create_clears_the_intent_and_names_the_file(
    api: Api, make_job: Callable[..., Job], status: int, hint: str
) -> None:
    job = make_job([2])
    api.faults(http=[("create", status, 100)])
    with pytest.raises(
        SubmissionRefusedError, match=rf"part-0001\.jsonl: the API refused.*{status}.*{hint}"
    ):
        submit(api, job)
    assert len(api.wire.creates()) == 1 and listings(api) == 0
    assert job.ledger.records()[0].status is None


def test_the_spend_limit_stops_at_once_and_says_so(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([2])
    api.admin.set_faults(
        FaultConfig(
            http=(
                HttpFault(
                    endpoint="create",
                    status=429,
                    count=100,
                    error_code="enforced_spend_limit_reached",
                ),
            )
        )
    )
    with pytest.raises(SpendLimitError, match=r"spend limit is reached.*does not retry"):
        submit(api, job)
    assert len(api.wire.creates()) == 1 and listings(api) == 0
    assert job.ledger.records()[0].status is None


def test_a_bare_5xx_after_the_batch_was_made_is_reconciled_not_resent(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(faults={"bare_502_after_create": 1})
    job = make_job([3])
    [record] = submit(api, job)
    [made] = api.admin.audit()
    assert (record.batch_id, record.note) == (made["batch_id"], RECONCILED_NOTE)
    assert len(api.wire.creates()) == 1 and listings(api) >= 1
    assert_each_custom_id_submitted_once(api, job)


# -- item 6: a 413 splits the file ------------------------------------------------------------


def test_a_file_too_large_for_the_api_is_sent_in_halves_recursively(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(max_batch_bytes=200)  # one request fits, two do not
    job = make_job([1, 5])
    records = submit(api, job)
    by_path = {r.file.path: r for r in job.ledger.records()}
    assert by_path["requests/a1/part-0002.jsonl"].status is BatchStatus.split_up
    halves = [p for p, r in by_path.items() if r.file.parent == "requests/a1/part-0002.jsonl"]
    assert halves == ["requests/a1/part-0002.1.jsonl", "requests/a1/part-0002.2.jsonl"]
    sent = [r for r in records if r.batch_id]
    assert len(sent) == 6 and all(r.file.n_requests == 1 for r in sent)
    assert_each_custom_id_submitted_once(api, job)
    for record in sent:  # every leaf has its own index, in line with its file
        index = job.paths.index_file(record.file.path)
        assert index.is_file()
    assert submit(api, job) == records  # a rerun sends nothing
    assert len(api.admin.audit()) == 6


def test_a_single_request_too_large_alone_ends_failed_with_the_reason(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(max_batch_bytes=100)
    job = make_job([1])
    [record] = submit(api, job)
    assert record.status is BatchStatus.failed and record.batch_id is None
    assert record.note is not None and "too large even alone" in record.note
    assert "413" in record.note
    assert api.admin.audit() == []
    assert submit(api, job) == [record] and len(api.wire.creates()) == 1


class _CrashAfterCreates(BatchGateway):
    """The process dies right after its n-th successful create (the response never recorded)."""

    def __init__(self, base: BatchGateway, n: int) -> None:
        super().__init__(base.client, sleep=base._sleep)
        self.left = n

    def create_from_file(self, path: Path, body_bytes: int):  # type: ignore[no-untyped-def]
        batch = super().create_from_file(path, body_bytes)
        self.left -= 1
        if self.left == 0:
            raise SystemExit("crash")
        return batch


def test_a_crash_in_the_middle_of_a_split_resumes_without_a_duplicate(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(max_batch_bytes=300)  # two requests fit, four do not
    job = make_job([4])
    with pytest.raises(SystemExit):
        submit(api, job, gateway=_CrashAfterCreates(api.gateway, 1))
    first = job.ledger.record("requests/a1/part-0001.1.jsonl")
    assert first.status is BatchStatus.intent  # created, but the crash lost its id
    records = submit(api, job)
    assert [r.file.path for r in records if r.batch_id] == [
        "requests/a1/part-0001.1.jsonl",
        "requests/a1/part-0001.2.jsonl",
    ]
    assert records[0].note == RECONCILED_NOTE and records[1].note is None
    assert len(api.admin.audit()) == 2
    assert_each_custom_id_submitted_once(api, job)


def test_a_request_file_broken_mid_stream_is_refused_not_reconciled(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    path = job.paths.root / job.files[0].path
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:-1] + b"\n"  # same size, a blank line inside the body
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(SubmissionRefusedError, match="blank line"):
        submit(api, job)
    assert listings(api) == 0 and api.admin.audit() == []
    assert job.ledger.records()[0].status is None
