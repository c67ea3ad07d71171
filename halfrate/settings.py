"""Runtime settings, read from HALFRATE_* environment variables (and a local .env)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The Message Batches API limits (shared/reference/anthropic-batches.md section 5).
API_MAX_REQUESTS_PER_BATCH = 100_000
API_MAX_BATCH_BYTES = 256_000_000
API_KEY_BLOCK_ENV = "HALFRATE_API_KEY_BLOCK"
"""Names a Prefect Secret block that holds the API key (read by tasks/runtime.py at run time)."""


class Settings(BaseSettings):
    """Where halfrate keeps its files and how it paces itself; the API key is read at run time."""

    model_config = SettingsConfigDict(
        env_prefix="HALFRATE_", env_file=".env", extra="ignore", validate_default=True
    )

    warehouse: Path = Field(Path("data/warehouse.duckdb"), description="The DuckDB warehouse file.")
    workdir: Path = Field(
        Path("data/jobs"), description="One folder per job: staged files, ledger."
    )
    poll_interval: float = Field(
        30.0, gt=0, description="Seconds before the second batch status check (then it backs off)."
    )
    max_poll_interval: float = Field(
        900.0,
        gt=0,
        description="The longest wait between two status checks: the wait for a batch backs off "
        "from poll_interval, doubling, up to this (30 s, 1, 2, 4, 8 min, then every 15 min).",
    )
    max_requests_per_batch: int = Field(
        API_MAX_REQUESTS_PER_BATCH, ge=1, le=API_MAX_REQUESTS_PER_BATCH
    )
    max_batch_bytes: int = Field(
        API_MAX_BATCH_BYTES, ge=1024, le=API_MAX_BATCH_BYTES, description="Create body size cap."
    )
    max_text_chars: int = Field(400_000, ge=1, description="Longer source texts are quarantined.")
    reconcile_wait: float = Field(
        10.0,
        ge=0,
        description="Seconds a lost create waits for its batch to appear in the list before "
        "halfrate concludes none was made; reconcile retries back off from it.",
    )
    max_wait_hours: float = Field(
        26.0,
        gt=0,
        description="How long a run waits for its batches before it fails (they keep running: "
        "a rerun resumes the wait). A batch expires 24 h after creation.",
    )
    max_queued_requests: int | None = Field(
        None,
        ge=1,
        description="The most batch requests a job keeps in the API's processing queue (stay "
        "under your tier's cap); more files wait locally until its batches end. None: no cap "
        "of halfrate's own (a 429 from the API still holds the rest back).",
    )
    realtime_concurrency: int = Field(
        4, ge=1, le=64, description="Real-time Messages calls in flight at once, per job."
    )
    load_retry_seconds: float = Field(
        120.0, ge=0, description="How long a load waits for a warehouse another process holds."
    )
    prefect_server: Literal["keep", "run"] = Field(
        "keep",
        description="Without PREFECT_API_URL: `keep` starts a local Prefect server once and keeps "
        "it for later runs (`halfrate server stop`); `run` starts one per run, stopped at its end.",
    )
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "HALFRATE_ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "HALFRATE_ANTHROPIC_BASE_URL")
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call `get_settings.cache_clear()` after changing env)."""
    return Settings()
