"""A local, deterministic stand-in for Anthropic's Message Batches API (not a model)."""

from halfrate_emulator.admin_client import EmulatorAdmin
from halfrate_emulator.options import EmulatorOptions, FaultConfig, HttpFault
from halfrate_emulator.server import EmulatorServer

__all__ = ["EmulatorAdmin", "EmulatorOptions", "EmulatorServer", "FaultConfig", "HttpFault"]
