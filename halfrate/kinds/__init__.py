"""The job kinds: a registry of plug-ins, and `JobConfig`, the union of their job models.

To add a kind: write halfrate/kinds/<kind>.py (a JobBase subclass and a Kind subclass, see
base.py), put its SQL under sql/kinds/<kind>/, then add it to KINDS and to JobConfig below and
remove it from PLANNED (docs/kinds.md).
"""

from typing import Annotated

from pydantic import Field

from halfrate.errors import ActionableError
from halfrate.kinds.base import JobBase, Kind
from halfrate.kinds.extract import EXTRACT, ExtractJob
from halfrate.kinds.generate import GENERATE, GenerateJob
from halfrate.kinds.judge import JUDGE, JudgeJob
from halfrate.kinds.label import LABEL, LabelJob

KINDS: dict[str, Kind] = {kind.name: kind for kind in (LABEL, EXTRACT, GENERATE, JUDGE)}
"""Every implemented kind, by its `kind:` value."""

DEFAULT_KIND = "label"
"""A job file without `kind` is a label job (it was written before kinds existed)."""

PLANNED: tuple[str, ...] = ()
"""Kinds the job file format reserves but halfrate does not run yet."""

JobConfig = Annotated[LabelJob | ExtractJob | GenerateJob | JudgeJob, Field(discriminator="kind")]
"""A job of any implemented kind (pydantic picks the model by `kind`); add new job models
with `|`, e.g. `Annotated[LabelJob | ExtractJob, Field(discriminator="kind")]`."""


class UnknownKindError(ValueError, ActionableError):
    """A `kind:` that halfrate does not (yet) implement; the message lists the ones it does."""


def kind_of(job: JobBase) -> Kind:
    """The plug-in that runs a job of this kind."""
    return kind_named(job.kind)


def kind_named(name: object) -> Kind:
    """The plug-in called `name`, or an error that says which kinds exist."""
    if isinstance(name, str) and name in KINDS:
        return KINDS[name]
    implemented = ", ".join(KINDS)
    if name in PLANNED:
        raise UnknownKindError(
            f"kind {name!r} is not implemented yet; this version runs: {implemented}"
        )
    planned = f" (planned: {', '.join(PLANNED)})" if PLANNED else ""
    raise UnknownKindError(f"kind {name!r} is unknown; use one of: {implemented}{planned}")
