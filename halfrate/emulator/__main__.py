"""`python -m halfrate.emulator`: the same as `halfrate emulator`."""

import typer

from halfrate.emulator.cli import emulator

if __name__ == "__main__":
    typer.run(emulator)
