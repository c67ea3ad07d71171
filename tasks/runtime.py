"""Settings for a running task, with the API key resolved at run time (env or a Secret block)."""

import os

from prefect.blocks.system import Secret
from pydantic import SecretStr

from halfrate.errors import ActionableError
from halfrate.settings import API_KEY_BLOCK_ENV, Settings, get_settings

# API_KEY_BLOCK_ENV names a Prefect Secret block that holds the API key. The deployment's job
# variables carry this *name* (never the value), so the key stays out of parameters, job
# variables, logs and artifacts.


class APIKeyBlockError(RuntimeError, ActionableError):
    """The Secret block named by HALFRATE_API_KEY_BLOCK cannot supply the API key."""


def settings() -> Settings:
    """The process settings; without ANTHROPIC_API_KEY, the key comes from the named Secret block.

    Raises:
        APIKeyBlockError: HALFRATE_API_KEY_BLOCK names a block that is missing, not a Secret,
            or holds something other than a non-empty string.
    """
    base = get_settings()
    block_name = os.environ.get(API_KEY_BLOCK_ENV, "").strip()
    if _has_key(base) or not block_name:
        return base
    return base.model_copy(update={"anthropic_api_key": SecretStr(_read_secret(block_name))})


def _has_key(settings: Settings) -> bool:
    key = settings.anthropic_api_key
    return key is not None and bool(key.get_secret_value().strip())


def _read_secret(block_name: str) -> str:
    fix = (
        f"create it with `prefect block create secret` (name {block_name!r}) or "
        f"`Secret(value=...).save({block_name!r})`, or set ANTHROPIC_API_KEY in the worker's "
        f"environment and unset {API_KEY_BLOCK_ENV}"
    )
    try:
        block = Secret.load(block_name)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise APIKeyBlockError(
            f"{API_KEY_BLOCK_ENV}={block_name}: no such Secret block on the Prefect server "
            f"({exc}); {fix}"
        ) from None
    value = block.get()
    if not isinstance(value, str) or not value.strip():
        raise APIKeyBlockError(
            f"{API_KEY_BLOCK_ENV}={block_name}: the Secret block must hold the API key as a "
            f"non-empty string, got {type(value).__name__}; {fix}"
        )
    return value.strip()
