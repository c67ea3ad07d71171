"""A headless Chromium driven over the DevTools protocol: fill in and submit the Prefect UI's forms.

`prefect_stack.chromium` can only load a page and dump or shoot it; a form has to be typed into
and submitted, so this opens a DevTools websocket (the `websockets` package Prefect depends on)
and runs JavaScript in the page, as a person's clicks would.
"""

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect_stack import CHROMIUM_FLAGS
from websockets.sync.client import ClientConnection, connect


class Page:
    """One browser tab: navigate, run JavaScript, wait for something, take a screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {expression}")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return str(self.js("document.body.innerText"))

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        """The whole page (the window grown to its height), as a PNG."""
        if full_page:
            height = self.js("document.documentElement.scrollHeight")
            inner = self.js(
                "Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))"
            )
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=int(max(height, inner, 1000)),
                deviceScaleFactor=1,
                mobile=False,
            )
            time.sleep(1)  # the app lays itself out again
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@contextmanager
def browser(profile: Path) -> Iterator[Page]:
    """A headless Chromium (stopped by its process group at the end) and its first tab."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian `chromium` is not installed (.ci/run installs it with apt-get)")
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time-budget")]
    proc = subprocess.Popen(
        [binary, *flags, "--remote-debugging-port=0", f"--user-data-dir={profile}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        endpoint = None
        for line in proc.stderr:
            found = re.search(r"DevTools listening on ws://([^/]+)/", line)
            if found:
                endpoint = found.group(1)
                break
        assert endpoint, "chromium printed no DevTools endpoint"
        tabs = httpx.get(f"http://{endpoint}/json", timeout=30).json()
        tab = next(t for t in tabs if t["type"] == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
            page = Page(ws)
            page.call("Page.enable")
            yield page
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
