"""Cron fields for :mod:`hatoba.model.schedule`: parse the AWS 6-field and the classic 5-field
forms into sets of values, and find the next local date-time that matches.

Vocabulary: a *field* is one of the space-separated parts (``minutes`` ... ``year``); an
*item* is one comma-separated part of a field. Days of the week are kept as Python weekdays
(0=MON ... 6=SUN) whatever numbering the expression used (AWS: 1=SUN ... 7=SAT; classic:
0 or 7=SUN ... 6=SAT).

The evaluator walks year → month → day → hour → minute over sorted value lists, and the days
of a month are computed in one step (:func:`month_days`), so a schedule that fires once every
four years (``cron(0 0 29 2 ? *)``) costs a few dozen loop turns, not a minute-by-minute scan.
Time-zone rules (skip a local time that does not exist, run a repeated one once) live in
:func:`next_cron`.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

MIN_YEAR = 1970
MAX_YEAR = 2199  # AWS's year range; classic cron (no year field) stops here too

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTH_NAMES = {name: i + 1 for i, name in enumerate(_MONTHS)}
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
AWS_DAY_NAMES = {name: i + 1 for i, name in enumerate(_DAY_NAMES)}  # 1=SUN ... 7=SAT
CLASSIC_DAY_NAMES = {name: i for i, name in enumerate(_DAY_NAMES)}  # 0=SUN ... 6=SAT
# Longest month for each month number (February counts its leap day).
_MAX_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_NTH = re.compile(r"^([0-9]+|[A-Z]+)#([0-9]*)$")
_LAST_OF = re.compile(r"^([0-9]+|[A-Z]+)L$")
_NEAREST = re.compile(r"^([0-9]*)W$")


class CronSyntaxError(Exception):
    """Every problem found in one cron expression, each message naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Bad(Exception):
    """One problem in one field; ``item`` is the list item at fault, when there is one."""

    def __init__(self, message: str, item: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.item = item

    def within(self, f_name: str, text: str) -> str:
        """The full message: field, field text, the item when it is not the whole field."""
        where = f"'{self.item}': " if self.item and self.item != text else ""
        return f"{f_name} '{text}': {where}{self.message}"


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None

    def hint(self) -> str:
        if self.name == "month":
            return f"{self.lo}-{self.hi} or JAN-DEC"
        if self.names is AWS_DAY_NAMES:
            return "1-7 (1=SUN) or SUN-SAT"
        if self.names is CLASSIC_DAY_NAMES:
            return "0-7 (0 and 7=SUN) or SUN-SAT"
        return f"{self.lo}-{self.hi}"


AWS_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES),
    _Field("day-of-week", 1, 7, AWS_DAY_NAMES),
    _Field("year", MIN_YEAR, MAX_YEAR),
)
CLASSIC_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES),
    _Field("day-of-week", 0, 7, CLASSIC_DAY_NAMES),
)


@dataclass(frozen=True)
class DayRule:
    """Which days of a month match. ``*_any`` means the field does not restrict."""

    dom_any: bool = True
    days: frozenset[int] = frozenset()
    last_day: bool = False  # L
    last_weekday: bool = False  # LW
    nearest_weekday: frozenset[int] = frozenset()  # 15W: the weekday nearest the 15th
    dow_any: bool = True
    weekdays: frozenset[int] = frozenset()  # Python weekdays, 0=MON
    last_of: frozenset[int] = frozenset()  # 5L (AWS 6L): the last Friday
    nth: frozenset[tuple[int, int]] = frozenset()  # (weekday, n): 2#3 (AWS) = third Monday
    either: bool = False  # classic cron with both restricted: a day matching either runs


@dataclass(frozen=True)
class CronSpec:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: DayRule


# ---------------------------------------------------------------------------------- parsing


@lru_cache(maxsize=1024)
def parse_cron(text: str, *, aws: bool) -> CronSpec:
    """``text`` is the inside of ``cron(...)`` (``aws=True``: 6 fields) or a classic 5-field
    string (``aws=False``). Raises :class:`CronSyntaxError` listing every bad field.
    Cached: many scheduled tasks share a handful of expressions."""
    parts = text.split()
    fields = AWS_FIELDS if aws else CLASSIC_FIELDS
    if len(parts) != len(fields):
        names = " ".join(f.name for f in fields)
        raise CronSyntaxError([f"needs {len(fields)} fields ({names}), got {len(parts)}"])
    problems: list[str] = []

    def plain(i: int) -> tuple[int, ...]:
        f = fields[i]
        try:
            if parts[i] == "?":
                raise _Bad("'?' is only allowed in day-of-month or day-of-week")
            return tuple(sorted(_values(parts[i], f)))
        except _Bad as e:
            problems.append(e.within(f.name, parts[i]))
            return (f.lo,)

    minutes, hours, months = plain(0), plain(1), plain(3)
    years = plain(5) if aws else tuple(range(MIN_YEAR, MAX_YEAR + 1))
    dom_text, dow_text = parts[2], parts[4]
    rule = DayRule()
    try:
        rule = _day_rule(dom_text, dow_text, aws=aws)
    except CronSyntaxError as e:
        problems.extend(e.problems)
    if not problems:
        never = _never_in_months(rule, months)
        if never:
            problems.append(f"day-of-month '{dom_text}': {never}")
    if problems:
        raise CronSyntaxError(problems)
    return CronSpec(minutes, hours, months, years, rule)


def _day_rule(dom_text: str, dow_text: str, *, aws: bool) -> DayRule:
    problems: list[str] = []
    dom_q, dow_q = dom_text == "?", dow_text == "?"
    if aws:
        if dom_q and dow_q:
            problems.append(
                "day-of-month and day-of-week are both '?'; exactly one of them must be '?' "
                "(e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON *))"
            )
        elif not dom_q and not dow_q:
            if dow_text == "*":
                problems.append(
                    f"day-of-week '*': use '?' here, since day-of-month is set to "
                    f"'{dom_text}' (AWS cron needs '?' in exactly one of the two)"
                )
            elif dom_text == "*":
                problems.append(
                    f"day-of-month '*': use '?' here, since day-of-week is set to "
                    f"'{dow_text}' (AWS cron needs '?' in exactly one of the two)"
                )
            else:
                problems.append(
                    f"day-of-month '{dom_text}' and day-of-week '{dow_text}' are both set; "
                    "AWS cron needs '?' in one of them"
                )
    dom = _parse_dom(dom_text, problems)
    dow = _parse_dow(dow_text, AWS_FIELDS[4] if aws else CLASSIC_FIELDS[4], aws, problems)
    if problems:
        raise CronSyntaxError(problems)
    dom_any = dom_text in ("*", "?")
    dow_any = dow_text in ("*", "?")
    # Vixie cron: when both fields are restricted (neither starts with '*'), either may match.
    either = not aws and not dom_text.startswith(("*", "?")) and not dow_text.startswith(("*", "?"))
    return DayRule(
        dom_any=dom_any,
        days=dom[0],
        last_day=dom[1],
        last_weekday=dom[2],
        nearest_weekday=dom[3],
        dow_any=dow_any,
        weekdays=dow[0],
        last_of=dow[1],
        nth=dow[2],
        either=either,
    )


def _parse_dom(text: str, problems: list[str]) -> tuple[frozenset[int], bool, bool, frozenset[int]]:
    f = AWS_FIELDS[2]
    days: set[int] = set()
    last = last_weekday = False
    nearest: set[int] = set()
    if text in ("?", "*"):
        return frozenset(range(1, 32)), False, False, frozenset()
    try:
        for item in _items(text):
            up = item.upper()
            if up == "L":
                last = True
            elif up == "LW":
                last_weekday = True
            elif m := _NEAREST.match(up):
                if not m.group(1):
                    raise _Bad("W needs a single day before it, e.g. 15W (or LW)")
                nearest.add(_number(m.group(1), f))
            elif "W" in up:
                raise _Bad("W needs a single day before it, e.g. 15W (or LW)", item)
            elif "L" in up:
                raise _Bad("L stands alone (last day of the month), or as LW", item)
            else:
                days |= _item_values(item, f)
    except _Bad as e:
        problems.append(e.within("day-of-month", text))
    return frozenset(days), last, last_weekday, frozenset(nearest)


def _parse_dow(
    text: str, f: _Field, aws: bool, problems: list[str]
) -> tuple[frozenset[int], frozenset[int], frozenset[tuple[int, int]]]:
    def weekday(value: int) -> int:  # the expression's numbering → Python's 0=MON
        return (value - 2) % 7 if aws else (value - 1) % 7

    if text in ("?", "*"):
        return frozenset(range(7)), frozenset(), frozenset()
    weekdays: set[int] = set()
    last_of: set[int] = set()
    nth: set[tuple[int, int]] = set()
    try:
        for item in _items(text):
            up = item.upper()
            if up == "L":
                if not aws:
                    raise _Bad("L needs a day before it, e.g. 5L for the last Friday")
                weekdays.add(weekday(7))  # AWS/Quartz: L alone is the last day of the week
            elif m := _LAST_OF.match(up):
                last_of.add(weekday(_number(m.group(1), f)))
            elif m := _NTH.match(up):
                n = m.group(2)
                if not n.isdigit() or not 1 <= int(n) <= 5:
                    raise _Bad("the week number after # must be 1-5", item)
                nth.add((weekday(_number(m.group(1), f)), int(n)))
            elif "#" in up:
                raise _Bad("# needs a day and a week number, e.g. MON#2", item)
            else:
                weekdays |= {weekday(v) for v in _item_values(item, f)}
    except _Bad as e:
        problems.append(e.within("day-of-week", text))
    return frozenset(weekdays), frozenset(last_of), frozenset(nth)


def _items(text: str) -> list[str]:
    items = text.split(",")
    if any(not i for i in items):
        raise _Bad("empty item in the list")
    if len(items) > 1 and "?" in items:
        raise _Bad("'?' must be the whole field")
    return items


def _values(text: str, f: _Field) -> set[int]:
    values: set[int] = set()
    for item in _items(text):
        values |= _item_values(item, f)
    return values


def _item_values(item: str, f: _Field) -> set[int]:
    """``*``, ``a``, ``a-b``, ``*/n``, ``a/n``, ``a-b/n``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit():
            raise _Bad("the increment after / must be a whole number", item)
        step = int(step_text)
        if step < 1:
            raise _Bad("the increment after / must be 1 or more", item)
    if base == "*":
        lo, hi = f.lo, f.hi
    elif base == "?":
        raise _Bad("'?' must be the whole field")
    elif "-" in base:
        a, _, b = base.partition("-")
        lo, hi = _number(a, f), _number(b, f)
        if lo > hi:
            raise _Bad(f"range {a}-{b} runs backwards", item)
    else:
        lo = _number(base, f)
        hi = f.hi if slash else lo
    return set(range(lo, hi + 1, step))


def _number(token: str, f: _Field) -> int:
    if token.isdigit():
        value = int(token)
    elif f.names is not None and token.upper() in f.names:
        return f.names[token.upper()]
    else:
        what = "a number or a name" if f.names else "a number"
        shown = f"'{token}'" if token else "nothing"
        raise _Bad(f"{shown} is not {what}; allowed: {f.hint()}")
    if not f.lo <= value <= f.hi:
        raise _Bad(f"{value} is out of range {f.hint()}")
    return value


def _never_in_months(rule: DayRule, months: tuple[int, ...]) -> str:
    """A day-of-month that no selected month has (``cron(0 0 30 2 ? *)``), else ''."""
    if rule.dom_any or rule.either or rule.last_day or rule.last_weekday or rule.nearest_weekday:
        return ""
    longest = max(_MAX_MONTH_DAYS[m] for m in months)
    if min(rule.days) <= longest:
        return ""
    names = ",".join(_MONTHS[m - 1] for m in months)
    return f"no selected month ({names}) has day {min(rule.days)}, so it would never run"


# ------------------------------------------------------------------------------- evaluation


@lru_cache(maxsize=4096)
def month_days(rule: DayRule, year: int, month: int) -> tuple[int, ...]:
    """The days of ``year``-``month`` that ``rule`` selects, ascending."""
    first_wd, ndays = calendar.monthrange(year, month)
    all_days = range(1, ndays + 1)
    dom: set[int] | None = None
    if not rule.dom_any:
        dom = {d for d in rule.days if d <= ndays}
        if rule.last_day:
            dom.add(ndays)
        if rule.last_weekday:
            dom.add(_nearest_weekday(first_wd, ndays, ndays))
        for d in rule.nearest_weekday:
            dom.add(_nearest_weekday(first_wd, ndays, min(d, ndays)))
    dow: set[int] | None = None
    if not rule.dow_any:
        dow = set()
        for d in all_days:
            wd = (first_wd + d - 1) % 7
            if (
                wd in rule.weekdays
                or (wd in rule.last_of and d + 7 > ndays)
                or (wd, (d - 1) // 7 + 1) in rule.nth
            ):
                dow.add(d)
    if dom is None and dow is None:
        return tuple(all_days)
    if dom is None or dow is None:
        chosen = dom if dom is not None else dow
    elif rule.either:
        chosen = dom | dow
    else:
        chosen = dom & dow
    assert chosen is not None
    return tuple(sorted(chosen))


def _nearest_weekday(first_wd: int, ndays: int, day: int) -> int:
    """The MON-FRI day nearest ``day`` without leaving the month (Quartz's ``W``)."""
    wd = (first_wd + day - 1) % 7
    if wd == 5:  # Saturday: Friday before, or Monday after when the 1st is a Saturday
        return day - 1 if day > 1 else day + 2
    if wd == 6:  # Sunday: Monday after, or Friday before when it is the last day
        return day + 1 if day < ndays else day - 2
    return day


def local_to_utc(naive: datetime, zone: tzinfo) -> datetime | None:
    """The UTC instant of a local wall-clock time: its first occurrence when the clocks fall
    back (``fold=0``), ``None`` when it does not exist (skipped when the clocks spring
    forward): a round trip that does not return the same wall time reveals the gap."""
    utc = naive.replace(tzinfo=zone).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return utc


def next_cron(spec: CronSpec, zone: tzinfo, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), in UTC, or ``None``.

    Candidates are walked in local wall-clock order from the local minute of ``after``.
    Converting with ``fold=0`` keeps that order in UTC (the second pass through a repeated
    hour is never produced), so the first candidate that exists and is later than ``after``
    is the answer."""
    start = after.astimezone(zone).replace(tzinfo=None)
    y0, mo0, d0, h0, mi0 = start.year, start.month, start.day, start.hour, start.minute
    years = spec.years
    for year in years[bisect_left(years, y0) :]:
        first_year = year == y0
        for month in spec.months:
            if first_year and month < mo0:
                continue
            first_month = first_year and month == mo0
            for day in month_days(spec.days, year, month):
                if first_month and day < d0:
                    continue
                first_day = first_month and day == d0
                for hour in spec.hours:
                    if first_day and hour < h0:
                        continue
                    first_hour = first_day and hour == h0
                    for minute in spec.minutes:
                        if first_hour and minute < mi0:
                            continue
                        utc = local_to_utc(datetime(year, month, day, hour, minute), zone)
                        if utc is not None and utc > after:
                            return utc
    return None
