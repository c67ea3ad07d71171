"""`halfrate adopt`: a person says which batch holds a request file's requests.

It fixes any state it can describe: a file with a pending intent (an ambiguous lost create),
a file with no record at all, and a file whose adopted batch is the wrong one (that batch is
released as foreign: never adopted again, never canceled). It checks what can be checked now:
the batch's request count, and, once the batch has ended, every custom_id of its results
against the file's index. An adoption that cannot be checked yet is still a hypothesis:
`download` verifies it when the batch ends and releases it on a mismatch.
"""

from pathlib import Path

from halfrate.download import verify_results
from halfrate.gateway import BatchGateway, total_requests
from halfrate.ledger import BatchRecord, BatchStatus, Ledger
from halfrate.submit import ADOPTED_NOTE, SubmissionError
from halfrate.workspace import JobPaths, job_lock


def adopt_batch(
    ledger: Ledger, paths: JobPaths, gateway: BatchGateway, path: str, batch_id: str
) -> BatchRecord:
    """Attach `batch_id` to the request file `path`, after checking that it can be its batch."""
    with job_lock(paths):
        record = ledger.record(path)
        _check_adoptable(ledger, record, batch_id)
        batch = gateway.retrieve(batch_id)
        if total_requests(batch) != record.file.n_requests:
            raise SubmissionError(
                f"batch {batch_id} holds {total_requests(batch)} requests but {path} has "
                f"{record.file.n_requests}: it is not this file's batch"
            )
        if batch.processing_status == "ended":
            _check_custom_ids(paths, gateway, record, batch_id, batch.request_counts.model_dump())
        if record.batch_id is not None:
            ledger.release_foreign(path, record.batch_id, f"replaced by hand with {batch_id}")
        elif record.status is None:
            ledger.record_intent(path)
        ledger.record_batch(path, batch.model_dump(mode="json"), note=ADOPTED_NOTE)
        ledger.update_progress(batch.model_dump(mode="json"))
        gateway.note_fresh(batch_id)
        return ledger.record(path)


def _check_adoptable(ledger: Ledger, record: BatchRecord, batch_id: str) -> None:
    path = record.file.path
    if record.batch_id == batch_id:
        raise SubmissionError(f"{path}: batch {batch_id} is already its batch; nothing to do")
    if record.status in (BatchStatus.downloaded, BatchStatus.loaded):
        raise SubmissionError(
            f"{path}: its batch {record.batch_id} is {record.status}: its results were verified "
            "against the file, custom_id by custom_id, so it is this file's batch"
        )
    if record.status in (BatchStatus.split_up, BatchStatus.failed):
        raise SubmissionError(
            f"{path}: is {record.status} (the API refused it as too large), so no batch holds "
            "it; adopt batches for its halves instead (see `halfrate status`)"
        )
    if batch_id in ledger.foreign_batch_ids():
        raise SubmissionError(
            f"batch {batch_id} was found not to be {path}'s: its results carry other custom_ids"
        )
    if batch_id in ledger.known_batch_ids():
        raise SubmissionError(f"batch {batch_id} already belongs to another request file")


def _check_custom_ids(
    paths: JobPaths,
    gateway: BatchGateway,
    record: BatchRecord,
    batch_id: str,
    counts: dict[str, int],
) -> None:
    """Download the ended batch's results to a scratch file and check them against the index."""
    scratch = paths.root / "results" / f".adopt-{batch_id}.jsonl.part"
    try:
        gateway.download_results(batch_id, scratch)
        check = verify_results(scratch, paths.index_file(record.file.path), counts)
    finally:
        Path(scratch).unlink(missing_ok=True)
    if not check.ok:
        raise SubmissionError(
            f"batch {batch_id} is not the batch of {record.file.path}: {'; '.join(check.problems)}"
        )
