"""A local, deterministic stand-in for Anthropic's Message Batches API (not a model)."""

from typing import TYPE_CHECKING, Any

from halfrate_emulator.admin_client import EmulatorAdmin
from halfrate_emulator.options import EmulatorOptions, FaultConfig, HttpFault

if TYPE_CHECKING:
    from halfrate_emulator.server import EmulatorServer

__all__ = ["EmulatorAdmin", "EmulatorOptions", "EmulatorServer", "FaultConfig", "HttpFault"]


def __getattr__(name: str) -> Any:
    """The server (uvicorn, Starlette) is imported when it is used, not with the package: the
    `halfrate` CLI registers the `emulator` command on every start."""
    if name == "EmulatorServer":
        from halfrate_emulator.server import EmulatorServer

        return EmulatorServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
