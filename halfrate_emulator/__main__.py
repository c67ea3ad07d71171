"""`python -m halfrate_emulator`: the same as `halfrate emulator`."""

import typer

from halfrate_emulator.cli import emulator

if __name__ == "__main__":
    typer.run(emulator)
