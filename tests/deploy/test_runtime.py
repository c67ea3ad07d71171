"""tasks/runtime.py: the API key from the environment, else from the named Secret block."""

from typing import Any

import pytest
from prefect.blocks.system import Secret

from tasks import runtime


class FakeSecret:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


def blocks(monkeypatch: pytest.MonkeyPatch, stored: dict[str, Any]) -> list[str]:
    loaded: list[str] = []

    def load(name: str) -> FakeSecret:
        loaded.append(name)
        if name not in stored:
            raise ValueError(f"Unable to find block document named {name} for block type secret")
        return FakeSecret(stored[name])

    monkeypatch.setattr(Secret, "load", load)
    return loaded


def test_env_key_wins_and_no_block_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = blocks(monkeypatch, {"anthropic-api-key": "from-block"})
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    monkeypatch.setenv("HALFRATE_API_KEY_BLOCK", "anthropic-api-key")
    key = runtime.settings().anthropic_api_key
    assert key is not None and key.get_secret_value() == "from-env"
    assert loaded == []


def test_key_comes_from_the_named_block(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = blocks(monkeypatch, {"team-key": " sk-from-block\n"})
    monkeypatch.setenv("HALFRATE_API_KEY_BLOCK", "team-key")
    monkeypatch.setenv("HALFRATE_POLL_INTERVAL", "7")
    settings = runtime.settings()
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-from-block"
    assert settings.poll_interval == 7  # every other setting is the environment's
    assert "sk-from-block" not in repr(settings)  # a SecretStr, masked in any log line
    assert loaded == ["team-key"]


def test_no_key_and_no_block_leaves_the_key_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = blocks(monkeypatch, {})
    assert runtime.settings().anthropic_api_key is None  # make_client explains what to set
    assert loaded == []


def test_missing_block_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks(monkeypatch, {})
    monkeypatch.setenv("HALFRATE_API_KEY_BLOCK", "anthropic-api-key")
    with pytest.raises(runtime.APIKeyBlockError) as err:
        runtime.settings()
    message = str(err.value)
    assert "HALFRATE_API_KEY_BLOCK=anthropic-api-key: no such Secret block" in message
    assert "prefect block create secret" in message and "ANTHROPIC_API_KEY" in message


@pytest.mark.parametrize("value", ["", "   ", {"key": "sk-x"}])
def test_block_without_a_string_key_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    blocks(monkeypatch, {"anthropic-api-key": value})
    monkeypatch.setenv("HALFRATE_API_KEY_BLOCK", "anthropic-api-key")
    with pytest.raises(runtime.APIKeyBlockError, match="must hold the API key as a non-empty"):
        runtime.settings()
