"""Before a run starts: the checks that refuse a job in a second, and the endpoint it talks to
(the API as configured, or the built-in emulator started for this one command)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from cli.output import fail, note, warn
from halfrate.config import JobSpec
from halfrate.settings import get_settings

EMULATOR_KEY = "emulator-key"  # accepted by the emulator only


def check_before_start(
    command: str, job_files: list[str], spec: JobSpec | None, *, restart: bool, emulator: bool
) -> None:
    """Refuse in a second what would fail later: the job file, source, folders, key.

    Several job files are a chain's stages, in order: each is checked before the first one
    sends anything (a job source may name an earlier stage).
    """
    from halfrate.checks import MissingKeyError, check_job, check_key

    settings = get_settings()
    names: list[str] = []
    for job_file in job_files:
        checked = check_job(job_file, spec, settings, restart=restart, earlier=names)
        for warning in checked.warnings:
            warn(warning)
        names.append(checked.job.name)
    if emulator:
        return
    try:
        check_key(settings)
    except MissingKeyError:
        raise fail(
            "no ANTHROPIC_API_KEY is set: export ANTHROPIC_API_KEY=sk-ant-... to run against "
            f"the API, or try it offline on the built-in emulator: halfrate {command} "
            f"{' '.join(job_files)} --emulator"
        ) from None
    if settings.anthropic_api_key is not None:  # else a Secret block holds it: the run checks
        from halfrate.gateway import shared_gateway
        from halfrate.preflight import check_key as check_key_works

        check_key_works(shared_gateway(settings))  # the run's preflight then reuses the answer


@contextmanager
def api_endpoint(emulator: bool, why: str = "--emulator: ") -> Iterator[bool]:
    """The API as configured, or (`emulator`) the built-in emulator, started for this command
    and stopped after it. Yields whether it is the emulator."""
    if not emulator:
        yield False
        return
    from halfrate_emulator import EmulatorOptions, EmulatorServer

    data_dir = get_settings().workdir.parent / "emulator"
    options = EmulatorOptions(processing_seconds=2.0)
    with EmulatorServer(data_dir=data_dir, port=0, options=options) as server:
        note(
            f"{why}using the built-in emulator at {server.base_url} (a stand-in for the API: "
            "nothing is paid, and the answers are not a model's).",
            style="",
        )
        env = {
            "ANTHROPIC_BASE_URL": server.base_url,
            "ANTHROPIC_API_KEY": EMULATOR_KEY,
            "HALFRATE_POLL_INTERVAL": os.environ.get("HALFRATE_POLL_INTERVAL", "1"),
        }
        with _environment(env):
            yield True


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
