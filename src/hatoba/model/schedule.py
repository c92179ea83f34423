"""Schedule expressions for scheduled tasks, with EventBridge Scheduler's semantics. Pure: no
I/O, no clock; every function takes the instant it works from.

Forms accepted by :func:`parse_schedule`:

- ``cron(minutes hours day-of-month month day-of-week year)``: the AWS 6-field form.
  Day-of-week is 1-7 with 1=SUN (or SUN-SAT); exactly one of day-of-month and day-of-week
  must be ``?``. Day-of-month takes ``L`` (last day), ``LW`` (last weekday) and ``15W`` (the
  MON-FRI day nearest the 15th, never leaving the month: ``1W`` on a Saturday the 1st is
  Monday the 3rd; a day past the month's end counts as its last day, so ``31W`` in a 30-day
  month is the weekday nearest the 30th). Day-of-week takes ``6L`` (last Friday), ``2#3``
  (third Monday) and ``L`` alone (Saturday, as in Quartz). Years 1970-2199.
- ``cron(m h dom mon dow)`` or a bare ``m h dom mon dow``: classic (Vixie) cron, day-of-week
  0-7 with 0 and 7=SUN; when both day fields are restricted (neither starts with ``*``), a
  day matching either runs. The same ``L``/``W``/``#`` extensions are accepted; ``?`` means
  ``*``. The ``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly`` and
  ``@annually`` shorthands are accepted too. Classic schedules end after 2199, like AWS ones.
- ``rate(1 minute)``, ``rate(5 minutes)``, ``hour(s)``, ``day(s)``: the singular only for 1.
  Rates are a fixed grid anchored at the Unix epoch in UTC: ``rate(N unit)`` fires at every
  ``1970-01-01T00:00Z + k * N unit``. Every control plane computes the same instants, a
  restart does not shift them, and daylight saving time does not move them; ``rate(1 day)``
  fires at 00:00 UTC whatever the schedule's time zone.
- ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall-clock time in the schedule's time zone.

Time zones are IANA names (``zoneinfo``; the ``tzdata`` package supplies the database where
the system has none). Daylight saving time as EventBridge Scheduler does it: a local time
that does not exist (the clocks spring forward over it) is skipped, with no run that day at
that time; a local time that occurs twice (the clocks fall back) runs once, at its first
occurrence. An ``at()`` time that does not exist is rejected when parsed.

Why a small evaluator rather than a cron library: ``cronsim`` 2.8 has no ``?``, ``15W`` or
year field, and runs a time that falls in a DST gap just after the gap (Debian cron's rule,
not EventBridge's skip). ``croniter`` 7.0 has ``W``, ``L``, ``#`` and a year field, but numbers
days 0-6 from Sunday, stops its years at 2099, resolves DST its own way and reports
``[expr] is not acceptable`` instead of naming the field. Translating AWS expressions onto
either, re-checking each answer against our own DST rules and writing a parser anyway for
field-named errors would take more code than the evaluator in :mod:`schedule_cron`, which
computes a month's matching days at once and is fast over long gaps.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.schedule_cron import (
    MAX_YEAR,
    MIN_YEAR,
    CronSpec,
    CronSyntaxError,
    local_to_utc,
    next_cron,
    parse_cron,
)

__all__ = [
    "AtSchedule",
    "CronSchedule",
    "RateSchedule",
    "Schedule",
    "flexible_offset",
    "parse_schedule",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_RATE = timedelta(days=365_000)  # 1000 years: longer is surely a mistake
_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FORM = re.compile(r"^(cron|rate|at)\s*\((.*)\)$", re.IGNORECASE | re.DOTALL)
_AT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$")
_EXAMPLES = "cron(0 12 * * ? *), rate(5 minutes), at(2030-01-31T09:00:00) or '0 12 * * *'"


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got {value!r}")


@dataclass(frozen=True)
class Schedule(ABC):
    """A parsed schedule expression. Instants in and out are aware; results are in UTC."""

    expression: str
    timezone: str = "UTC"
    kind: ClassVar[str]

    @abstractmethod
    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``; ``None`` when there are no more."""

    def ticks_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Fire times in ``(start, end]``, oldest first, at most the first ``limit``."""
        _aware(start, "start")
        _aware(end, "end")
        ticks: list[datetime] = []
        at: datetime | None = start
        while at is not None and len(ticks) < limit:
            at = self.next_after(at)
            if at is None or at > end:
                break
            ticks.append(at)
        return ticks


@dataclass(frozen=True, kw_only=True)
class CronSchedule(Schedule):
    spec: CronSpec = field(repr=False, compare=False)
    zone: tzinfo = field(repr=False, compare=False)
    kind: ClassVar[str] = "cron"

    def next_after(self, after: datetime) -> datetime | None:
        _aware(after, "after")
        return next_cron(self.spec, self.zone, after)


@dataclass(frozen=True, kw_only=True)
class RateSchedule(Schedule):
    """Fires at ``EPOCH + k * period`` for every whole ``k``: a fixed UTC grid."""

    period: timedelta = field(compare=False)
    kind: ClassVar[str] = "rate"

    def next_after(self, after: datetime) -> datetime | None:
        _aware(after, "after")
        steps = (after - EPOCH) // self.period
        try:
            return EPOCH + (steps + 1) * self.period
        except OverflowError:
            return None


@dataclass(frozen=True, kw_only=True)
class AtSchedule(Schedule):
    """Fires once, at ``when`` (UTC); ``local`` is the wall-clock time as written."""

    when: datetime = field(compare=False)
    local: datetime = field(repr=False, compare=False)
    kind: ClassVar[str] = "at"

    def next_after(self, after: datetime) -> datetime | None:
        _aware(after, "after")
        return self.when if self.when > after else None


def parse_schedule(
    expression: str,
    timezone: str = "UTC",
    path: str = "schedule",
    *,
    timezone_path: str | None = None,
) -> Schedule:
    """Parse ``cron(...)``, ``rate(...)``, ``at(...)`` or a classic 5-field cron string.

    Raises :class:`ValidationFailed` listing every problem: cron ones name the cron field;
    an unknown time zone is reported at ``timezone_path`` (default: ``path``) and names
    ``timezone``."""
    errors: list[FieldError] = []
    zone = _zone(timezone, timezone_path or path, errors)
    text = expression.strip()
    schedule: Schedule | None = None
    try:
        schedule = _parse(text, expression, timezone, zone or UTC)
    except _Invalid as e:
        errors.extend(FieldError(path, p) for p in e.problems)
    if errors or schedule is None:
        raise ValidationFailed(errors, subject="schedule")
    return schedule


class _Invalid(Exception):
    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def _zone(name: str, path: str, errors: list[FieldError]) -> tzinfo | None:
    try:
        if not name.strip() or name != name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors.append(
            FieldError(
                path,
                f"timezone {name!r} is not a known IANA time zone "
                "(e.g. UTC, Europe/London, America/New_York)",
            )
        )
        return None


def _parse(text: str, expression: str, tz_name: str, zone: tzinfo) -> Schedule:
    if not text:
        raise _Invalid(f"the schedule expression is empty; expected e.g. {_EXAMPLES}")
    if text.lower() in _SHORTHANDS:
        return _cron(_SHORTHANDS[text.lower()], expression, tz_name, zone, aws=False)
    m = _FORM.match(text)
    if m is None:
        if re.match(r"^(cron|rate|at)\s*\(", text, re.IGNORECASE):
            raise _Invalid(f"{text!r} is missing its closing ')'")
        n = len(text.split())
        if n == 5:
            return _cron(text, expression, tz_name, zone, aws=False)
        if n == 6:
            raise _Invalid(
                f"{text!r} has 6 fields: write the AWS form as cron({text}); "
                "a bare cron string has 5 (minute hour day-of-month month day-of-week)"
            )
        raise _Invalid(f"{text!r} is not a schedule expression; expected e.g. {_EXAMPLES}")
    form, body = m.group(1).lower(), m.group(2).strip()
    if form == "rate":
        return _rate(body, expression, tz_name)
    if form == "at":
        return _at(body, expression, tz_name, zone)
    n = len(body.split())
    if n not in (5, 6):
        raise _Invalid(
            f"cron() needs 6 fields (minutes hours day-of-month month day-of-week year), "
            f"or 5 for classic cron; got {n}: {body!r}"
        )
    return _cron(body, expression, tz_name, zone, aws=n == 6)


def _cron(body: str, expression: str, tz_name: str, zone: tzinfo, *, aws: bool) -> Schedule:
    try:
        spec = parse_cron(body, aws=aws)
    except CronSyntaxError as e:
        form = "cron" if aws else "classic cron"
        raise _Invalid(*(f"{form} {p}" for p in e.problems)) from None
    return CronSchedule(expression, tz_name, spec=spec, zone=zone)


def _rate(body: str, expression: str, tz_name: str) -> Schedule:
    parts = body.split()
    if len(parts) != 2:
        raise _Invalid(f"rate() needs a value and a unit, e.g. rate(5 minutes); got {body!r}")
    value_text, unit = parts[0], parts[1].lower()
    if not value_text.isdigit() or int(value_text) < 1:
        raise _Invalid(f"rate value {value_text!r} must be a whole number of 1 or more")
    value = int(value_text)
    singular = unit.removesuffix("s")
    if singular not in _UNITS:
        raise _Invalid(f"rate unit {parts[1]!r} must be minute(s), hour(s) or day(s)")
    if value == 1 and unit != singular:
        raise _Invalid(f"rate(1 {unit}): use the singular for 1, rate(1 {singular})")
    if value != 1 and unit == singular:
        raise _Invalid(f"rate({value} {unit}): use the plural, rate({value} {singular}s)")
    period = value * _UNITS[singular]
    if period > MAX_RATE:
        raise _Invalid(f"rate({body}) is longer than 1000 years")
    return RateSchedule(expression, tz_name, period=period)


def _at(body: str, expression: str, tz_name: str, zone: tzinfo) -> Schedule:
    m = _AT.match(body)
    if m is None:
        raise _Invalid(
            f"at({body}): the time must be yyyy-mm-ddThh:mm:ss, e.g. at(2030-01-31T09:00:00)"
        )
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError as e:
        raise _Invalid(f"at({body}): {e}") from None
    if not MIN_YEAR <= local.year <= MAX_YEAR:
        raise _Invalid(f"at({body}): the year must be {MIN_YEAR}-{MAX_YEAR}")
    when = local_to_utc(local, zone)
    if when is None:
        raise _Invalid(
            f"at({body}) does not exist in {tz_name}: the clocks skip that time "
            "(daylight saving time starts); pick a time outside the gap"
        )
    return AtSchedule(expression, tz_name, when=when, local=local)


def flexible_offset(job_name: str, tick: datetime, window_minutes: int) -> timedelta:
    """A delay in ``[0, window_minutes)`` (whole seconds) for a flexible time window.

    Derived from SHA-256 of the job name and the tick's UTC instant, not from ``hash()``
    (salted per process) or a random generator, so every control plane, and every restart,
    computes the same delay for the same run. ``window_minutes`` 0 means no window."""
    if window_minutes < 0:
        raise ValueError(f"window_minutes must be 0 or more, got {window_minutes}")
    if window_minutes == 0:
        return timedelta(0)
    _aware(tick, "tick")
    key = f"{job_name}\0{tick.astimezone(UTC).isoformat()}".encode()
    digest = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return timedelta(seconds=digest % (window_minutes * 60))
