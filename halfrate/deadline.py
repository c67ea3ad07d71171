"""A job's deadline: an absolute time, or a duration counted from the job's first submission.

`deadline: 2026-12-01T07:00:00+01:00` (an ISO 8601 time with its UTC offset, or `Z`) or
`deadline: 6h` (`30m`, `1h30m`, `2d`, `90s`: days, hours, minutes, seconds). A duration is
counted from the moment the job first submitted anything (its first create, or its first
real-time request), which the ledger records once (`FIRST_SUBMIT_KEY`), so a resumed run keeps
the same deadline. A time without an offset is refused: the machine that runs the job (a
Prefect worker) may not be in the writer's time zone.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

FIRST_SUBMIT_KEY = "first_submitted_at"
"""Ledger meta: when the job first sent anything (ISO, UTC)."""
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_EXAMPLES = "e.g. 6h, 90m, 1h30m, 2d, or 2026-12-01T07:00:00+01:00"


class DeadlineError(ValueError):
    """A `deadline:` that is neither a duration nor an ISO time with an offset."""


@dataclass(frozen=True)
class Deadline:
    """A parsed `deadline:`: either `at` (absolute) or `after` (from the first submission)."""

    text: str
    at: datetime | None = None
    after: timedelta | None = None

    def resolve(self, first_submitted_at: datetime | None) -> datetime | None:
        """The absolute deadline (UTC); None for a duration while nothing was submitted."""
        if self.at is not None:
            return self.at
        if first_submitted_at is None or self.after is None:
            return None
        return first_submitted_at.astimezone(UTC) + self.after


def normalize_deadline(value: object) -> object:
    """YAML reads `2026-12-01T07:00:00+01:00` as a datetime: keep it as its ISO text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        raise DeadlineError(
            f"deadline {value.isoformat()} is a date without a time: give the time and its "
            f"offset ({value.isoformat()}T07:00:00+01:00) or a duration ({_EXAMPLES})"
        )
    return value


def parse_deadline(text: str) -> Deadline:
    """Parse a `deadline:` value; raises `DeadlineError` naming what is wrong."""
    compact = text.strip().lower().replace(" ", "")
    match = _DURATION.fullmatch(compact)
    if compact and match is not None:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        after = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if after <= timedelta(0):
            raise DeadlineError(f"deadline {text!r} must be longer than zero ({_EXAMPLES})")
        return Deadline(text=text, after=after)
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DeadlineError(
            f"deadline {text!r} is neither a duration nor an ISO time ({_EXAMPLES})"
        ) from None
    if at.tzinfo is None:
        raise DeadlineError(
            f"deadline {text!r} has no UTC offset: add one ({text.strip()}+01:00, or Z for "
            "UTC), since the machine running the job may be in another time zone"
        )
    return Deadline(text=text, at=at.astimezone(UTC))


def parse_time(value: str | None) -> datetime | None:
    """A ledger timestamp ('...Z') as an aware datetime."""
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))
