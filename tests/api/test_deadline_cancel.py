"""The deadline's cancel against the emulator: halfrate cancels what has not ended (as itself,
not as the user), tolerates a batch that ended meanwhile, and lists for real time the requests
the canceled batches did not answer and the files never sent."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
from apitools import FAST_POLICY, Api, Job

from halfrate.config import JobConfig, parse_job
from halfrate.deadline import FIRST_SUBMIT_KEY
from halfrate.download import download_ended
from halfrate.finish import cancel_at_deadline, realtime_files
from halfrate.ledger import BatchStatus
from halfrate.submit import submit_pending


def job_config(tmp_path: Path, deadline: str = "1h") -> JobConfig:
    return parse_job(
        {
            "name": "job",
            "source": str(tmp_path / "a.csv"),
            "instructions": "Label it.",
            "labels": ["a", "b"],
            "deadline": deadline,
        }
    )


def started(job: Job, hours_ago: float) -> None:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    job.ledger.set_meta(FIRST_SUBMIT_KEY, at.isoformat())


def test_at_the_deadline_halfrate_cancels_what_has_not_ended_once_and_not_as_the_user(
    api: Api, make_job: Callable[..., Job], tmp_path: Path
) -> None:
    job = make_job([3, 2])
    submit_pending(job.ledger, job.paths, api.gateway, attempt=1, policy=FAST_POLICY)
    first, second = (r.batch_id or "" for r in job.ledger.records())
    config = job_config(tmp_path)
    started(job, hours_ago=0.5)
    assert cancel_at_deadline(config, job.ledger, api.gateway) == []  # not yet
    api.admin.force_end(first)  # it ended, but the ledger has not seen it yet: the API says 400

    started(job, hours_ago=2)
    assert cancel_at_deadline(config, job.ledger, api.gateway) == [first, second]
    assert set(job.ledger.system_cancels()) == {first, second}
    assert job.ledger.user_cancels() == {} and job.ledger.cancel_requested() is None
    statuses = {r.batch_id: r.processing_status for r in job.ledger.records()}
    assert statuses == {first: "ended", second: "canceling"}
    cancels = api.wire.count("POST", "/cancel")
    assert cancel_at_deadline(config, job.ledger, api.gateway) == []  # asked once
    assert api.wire.count("POST", "/cancel") == cancels


def test_what_the_deadline_left_goes_real_time_remainders_and_unsent_files(
    api: Api, make_job: Callable[..., Job], tmp_path: Path
) -> None:
    job = make_job([4, 3])
    config = job_config(tmp_path)
    [part1, part2] = job.files
    # only the first file was sent before the deadline (the second waited for the queue)
    job.ledger.record_intent(part1.path)
    batch = api.gateway.create_from_file(job.paths.root / part1.path, part1.body_bytes)
    job.ledger.record_batch(part1.path, batch.model_dump(mode="json"))
    started(job, hours_ago=2)
    assert realtime_files(config, job.ledger, job.paths, 1, "main") == [
        job.ledger.record(part2.path)
    ]  # before the cancel: the unsent file

    cancel_at_deadline(config, job.ledger, api.gateway)
    api.admin.advance_clock(3600)  # canceling -> ended: the emulator processed none of it
    job.ledger.update_progress(api.gateway.retrieve(batch.id).model_dump(mode="json"))
    download_ended(job.ledger, job.paths, api.gateway, attempt=1)
    assert not job.paths.outcomes_file(batch.id).exists()  # no load staged it: parsed raw
    assert job.ledger.record(part1.path).status is BatchStatus.downloaded

    files = realtime_files(config, job.ledger, job.paths, 1, "main")
    assert [r.file.path for r in files] == [
        "requests/a1/part-0001.rt.jsonl",  # the canceled requests of part 1
        part2.path,
    ]
    remainder = files[0].file
    assert remainder.parent == part1.path and remainder.n_requests == 4
    lines = (job.paths.root / remainder.path).read_bytes().splitlines()
    assert [orjson.loads(x)["custom_id"] for x in lines] == job.custom_ids(part1)
    index = pl.read_parquet(job.paths.index_file(remainder.path))
    assert index["custom_id"].to_list() == job.custom_ids(part1)
    again = realtime_files(config, job.ledger, job.paths, 1, "main")  # built once
    assert [r.file for r in again] == [r.file for r in files]


def test_without_a_deadline_nothing_is_canceled_nor_sent_in_real_time(
    api: Api, make_job: Callable[..., Job], tmp_path: Path
) -> None:
    job = make_job([2])
    submit_pending(job.ledger, job.paths, api.gateway, attempt=1, policy=FAST_POLICY)
    config = parse_job(
        {"name": "job", "source": "a.csv", "instructions": "Label it.", "labels": ["a", "b"]}
    )
    assert cancel_at_deadline(config, job.ledger, api.gateway) == []
    assert realtime_files(config, job.ledger, job.paths, 1, "main") == []
    assert api.wire.count("POST", "/cancel") == 0
