"""Running the emulator: uvicorn in a background thread, as a context manager.

with EmulatorServer(data_dir=tmp_path, options=EmulatorOptions(time_scale=0)) as server:
    client = anthropic.Anthropic(api_key="test", base_url=server.base_url)
    server.admin.advance_clock(3600)
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from halfrate_emulator.admin_client import EmulatorAdmin
from halfrate_emulator.app import build_app
from halfrate_emulator.errors import DropConnection
from halfrate_emulator.options import EmulatorOptions
from halfrate_emulator.service import Emulator


class DroppingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, except that `DropConnection` closes the socket at once: no 500
    is sent, and whatever part of the response was already written is all the client gets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            cycle = self.cycle
            try:
                await inner(scope, receive, send)
            except DropConnection:
                self.transport.close()
                cycle.disconnected = True  # tells uvicorn not to answer with a 500

        self.app = guarded


class EmulatorServer:
    """An emulator listening on `host:port` (port 0 picks a free port) until `stop()`."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        options: EmulatorOptions | None = None,
        log_level: str = "warning",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.options = options or EmulatorOptions()
        self.emulator = Emulator(self.data_dir, self.options)
        config = uvicorn.Config(
            build_app(self.emulator),
            host=host,
            port=port,
            http=DroppingH11Protocol,
            lifespan="off",
            log_level=log_level,
            access_log=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,  # a stalled create must not hold up stop()
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def admin(self) -> EmulatorAdmin:
        """A client for the admin endpoints of this server."""
        return EmulatorAdmin(self.base_url, self.options.admin_token)

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Start serving in a daemon thread; returns once the socket is listening."""
        self._thread = threading.Thread(target=self._run, name="halfrate-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def stop(self) -> None:
        """Stop serving and close the state database."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.emulator.store.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
