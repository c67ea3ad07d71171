"""Which API a run talked to: Anthropic's, or halfrate's built-in emulator.

A run's summary says so when it used the emulator, whose answers are deterministic stand-ins,
not a model's (an accuracy figure then only shows that the plumbing works). The run knows its
base URL only; the emulator answers `GET /_emulator/health` there, which the real API and a
proxy in front of it do not. The probe carries no API key.
"""

import json
import urllib.error
import urllib.request

HEALTH_PATH = "/_emulator/health"
ADMIN_HEADER = "x-emulator-admin-token"  # an emulator with an admin token refuses, naming it


def is_emulator(base_url: str | None, timeout: float = 3.0) -> bool:
    """Whether `base_url` is halfrate's emulator (None, the default endpoint: the real API)."""
    if not base_url:
        return False
    url = base_url.rstrip("/") + HEALTH_PATH
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read(64 * 1024))
            return isinstance(body, dict) and body.get("status") == "ok" and "time_scale" in body
    except urllib.error.HTTPError as exc:
        return exc.code == 401 and ADMIN_HEADER in exc.read(64 * 1024).decode(errors="replace")
    except (OSError, ValueError):
        return False
