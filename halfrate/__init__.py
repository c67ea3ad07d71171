"""halfrate: bulk Claude jobs through the Message Batches API, landed in DuckDB."""

__version__ = "0.1.0"
