"""`halfrate emulator`: run the local Message Batches API emulator in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from halfrate_emulator.faults import rule
from halfrate_emulator.options import (
    DEFAULT_MAX_BATCH_BYTES,
    EmulatorOptions,
    FaultConfig,
    HttpFault,
)

if TYPE_CHECKING:
    from halfrate_emulator.server import EmulatorServer

DEFAULT_PORT = 8765


def _rules(specs: list[str], rate_based: bool) -> list[HttpFault]:
    """Parse `ENDPOINT:STATUS:COUNT[:ERROR_CODE]` (or `...:RATE[:ERROR_CODE]`) fault specs."""
    amount_name = "RATE" if rate_based else "COUNT"
    rules = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise typer.BadParameter(
                f"expected ENDPOINT:STATUS:{amount_name}[:ERROR_CODE], got {spec!r}"
            )
        endpoint, status, amount = parts[:3]
        code = parts[3] if len(parts) == 4 else None
        try:
            if rate_based:
                rules.append(rule(endpoint, int(status), rate=float(amount), error_code=code))
            else:
                rules.append(rule(endpoint, int(status), count=int(amount), error_code=code))
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            raise typer.BadParameter(f"bad fault {spec!r}: {err}") from None
    return rules


def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = DEFAULT_PORT,
    data_dir: Annotated[Path, typer.Option(help="Where state lives (survives restarts).")] = Path(
        "data/emulator"
    ),
    time_scale: Annotated[
        float, typer.Option(help="Virtual seconds per real second (0 freezes).")
    ] = 1.0,
    processing_seconds: Annotated[float, typer.Option(help="Virtual seconds a batch takes.")] = 2.0,
    cancel_seconds: Annotated[float, typer.Option(help="Virtual seconds spent canceling.")] = 1.0,
    api_key: Annotated[str | None, typer.Option(help="Only accept this API key.")] = None,
    admin_token: Annotated[str | None, typer.Option(help="Require it on /_emulator/*.")] = None,
    fixture_mode: Annotated[bool, typer.Option(help="Any batch id exists (SDK tests).")] = False,
    shuffle_results: Annotated[bool, typer.Option(help="Shuffle result order per batch.")] = True,
    max_batch_bytes: Annotated[
        int, typer.Option(help="413 above this body size.")
    ] = DEFAULT_MAX_BATCH_BYTES,
    public_base_url: Annotated[str | None, typer.Option(help="Base of results_url.")] = None,
    fault_seed: Annotated[int, typer.Option(help="Seed of fault decisions.")] = 0,
    errored_rate: Annotated[float, typer.Option(help="Fraction of requests errored.")] = 0.0,
    expired_rate: Annotated[float, typer.Option(help="Fraction of requests expired.")] = 0.0,
    errored_custom_id_pattern: Annotated[str | None, typer.Option(help="Regex: errored.")] = None,
    invalid_output_custom_id_pattern: Annotated[
        str | None, typer.Option(help="Regex: outputs that break their schema.")
    ] = None,
    fail: Annotated[
        list[str] | None, typer.Option(help="ENDPOINT:STATUS:COUNT[:ERROR_CODE], repeatable.")
    ] = None,
    fail_rate: Annotated[
        list[str] | None, typer.Option(help="ENDPOINT:STATUS:RATE[:ERROR_CODE], repeatable.")
    ] = None,
    retry_after: Annotated[float, typer.Option(help="retry-after seconds on faults.")] = 0.05,
    transient_404: Annotated[int, typer.Option(help="404s right after create.")] = 0,
    cut_results_after: Annotated[
        int | None, typer.Option(help="Cut results after K lines.")
    ] = None,
    cut_results_count: Annotated[int, typer.Option(help="How many downloads to cut.")] = 1,
    lose_create_responses: Annotated[int, typer.Option(help="Commit, then drop N creates.")] = 0,
    stall_create_responses: Annotated[int, typer.Option(help="Commit, then hold N creates.")] = 0,
    stall_seconds: Annotated[float, typer.Option(help="How long a stalled create is held.")] = 30.0,
    bare_502_after_create: Annotated[
        int, typer.Option(help="Commit, then answer N creates with a bare (HTML) 502.")
    ] = 0,
    stall_message_responses: Annotated[
        int, typer.Option(help="Answer, then hold N Messages calls (stall_seconds).")
    ] = 0,
    stall_messages_after: Annotated[
        int, typer.Option(help="Messages calls served before the stalls start.")
    ] = 0,
    max_queued_requests: Annotated[
        int | None, typer.Option(help="Processing-queue cap: 429 on create above it.")
    ] = None,
    messages_rate_limit: Annotated[
        int, typer.Option(help="Messages calls admitted per rate-limit window.")
    ] = 4000,
    rate_limit_window: Annotated[
        float, typer.Option(help="The rate-limit window, in seconds.")
    ] = 60.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the local Message Batches API emulator (a deterministic stand-in, not a model)."""
    faults = FaultConfig(
        seed=fault_seed,
        errored_rate=errored_rate,
        expired_rate=expired_rate,
        errored_custom_id_pattern=errored_custom_id_pattern,
        invalid_output_custom_id_pattern=invalid_output_custom_id_pattern,
        http=tuple(_rules(fail or [], False) + _rules(fail_rate or [], True)),
        retry_after=retry_after,
        transient_404=transient_404,
        results_cut_after=cut_results_after,
        results_cut_count=cut_results_count,
        lose_create_responses=lose_create_responses,
        stall_create_responses=stall_create_responses,
        stall_seconds=stall_seconds,
        bare_502_after_create=bare_502_after_create,
        stall_message_responses=stall_message_responses,
        stall_messages_after=stall_messages_after,
    )
    options = EmulatorOptions(
        api_key=api_key,
        admin_token=admin_token,
        time_scale=time_scale,
        processing_seconds=processing_seconds,
        cancel_seconds=cancel_seconds,
        max_batch_bytes=max_batch_bytes,
        shuffle_results=shuffle_results,
        fixture_mode=fixture_mode,
        public_base_url=public_base_url,
        max_queued_requests=max_queued_requests,
        messages_rate_limit=messages_rate_limit,
        rate_limit_window=rate_limit_window,
        faults=faults,
    )
    from halfrate_emulator.server import EmulatorServer

    serve(EmulatorServer(data_dir, host, port, options, log_level=log_level))


def serve(server: EmulatorServer) -> None:
    """Run `server` until SIGINT/SIGTERM, announcing the URL once it is listening."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with server:
        typer.echo(f"emulator listening on {server.base_url}")
        while not stop.wait(0.5):
            pass
