"""Schedule expressions: cron (AWS and classic), rate, at; time zones and DST as EventBridge
Scheduler does them; deterministic flexible-window offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from hatoba.model.errors import ValidationFailed
from hatoba.model.schedule import (
    AtSchedule,
    CronSchedule,
    RateSchedule,
    Schedule,
    flexible_offset,
    parse_schedule,
)

NY = "America/New_York"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def local(zone: str, y: int, mo: int, d: int, h: int, mi: int = 0, *, fold: int = 0) -> datetime:
    """The UTC instant of a wall-clock time in ``zone``."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def fires(expression: str, after: datetime, n: int = 3, tz: str = "UTC") -> list[datetime]:
    return parse_schedule(expression, tz).ticks_between(after, utc(2200, 1, 1), n)


def error_of(expression: str, tz: str = "UTC") -> str:
    with pytest.raises(ValidationFailed) as info:
        parse_schedule(expression, tz)
    return str(info.value)


# ------------------------------------------------------------------------------------ forms


@pytest.mark.parametrize(
    ("expression", "kind"),
    [
        ("cron(0 12 * * ? *)", CronSchedule),
        ("cron(0 12 * * *)", CronSchedule),
        ("0 12 * * *", CronSchedule),
        ("@daily", CronSchedule),
        ("rate(5 minutes)", RateSchedule),
        ("at(2030-01-31T09:00:00)", AtSchedule),
        ("  cron( 0  12 * * ? * )  ", CronSchedule),
    ],
)
def test_each_form_parses_to_its_kind(expression: str, kind: type[Schedule]) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, kind)
    assert schedule.expression == expression
    assert schedule.timezone == "UTC"


def test_schedules_are_values() -> None:
    a = parse_schedule("cron(0 12 * * ? *)", "Europe/London")
    b = parse_schedule("cron(0 12 * * ? *)", "Europe/London")
    assert a == b
    assert hash(a) == hash(b)
    assert a != parse_schedule("cron(0 12 * * ? *)", NY)


def test_results_are_utc_whatever_the_input_zone() -> None:
    after = datetime(2024, 1, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:00Z
    nxt = parse_schedule("cron(30 * * * ? *)").next_after(after)
    assert nxt == utc(2024, 1, 1, 0, 30)
    assert nxt is not None and nxt.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("rate(1 hour)").next_after(datetime(2024, 1, 1))


# ---------------------------------------------------------------------------- cron fields


def test_minutes_hours_lists_ranges_and_increments() -> None:
    after = utc(2024, 1, 1)
    assert fires("cron(0,30 9-10 * * ? *)", after, 5) == [
        utc(2024, 1, 1, 9, 0),
        utc(2024, 1, 1, 9, 30),
        utc(2024, 1, 1, 10, 0),
        utc(2024, 1, 1, 10, 30),
        utc(2024, 1, 2, 9, 0),
    ]
    assert fires("cron(*/20 0 * * ? *)", after, 3) == [
        utc(2024, 1, 1, 0, 20),
        utc(2024, 1, 1, 0, 40),
        utc(2024, 1, 2, 0, 0),
    ]
    assert fires("cron(10/25 0 * * ? *)", after, 3) == [
        utc(2024, 1, 1, 0, 10),
        utc(2024, 1, 1, 0, 35),
        utc(2024, 1, 2, 0, 10),
    ]
    assert fires("cron(0 0-12/6 * * ? *)", after, 3) == [
        utc(2024, 1, 1, 6),
        utc(2024, 1, 1, 12),
        utc(2024, 1, 2, 0),
    ]


def test_next_after_is_strictly_after() -> None:
    schedule = parse_schedule("cron(0 12 * * ? *)")
    assert schedule.next_after(utc(2024, 1, 1, 12)) == utc(2024, 1, 2, 12)
    assert schedule.next_after(utc(2024, 1, 1, 11, 59, 59, 999999)) == utc(2024, 1, 1, 12)


def test_month_names_and_numbers() -> None:
    after = utc(2024, 1, 1)
    by_name = fires("cron(0 0 1 MAR,sep ? *)", after, 3)
    assert by_name == fires("cron(0 0 1 3,9 ? *)", after, 3)
    assert by_name == [utc(2024, 3, 1), utc(2024, 9, 1), utc(2025, 3, 1)]
    assert fires("cron(0 0 1 JAN-MAR ? *)", after, 3)[-1] == utc(2025, 1, 1)  # strictly after


def test_aws_day_of_week_counts_from_sunday_as_1() -> None:
    after = utc(2024, 1, 1)  # a Monday
    assert fires("cron(0 9 ? * 1 *)", after, 1) == [utc(2024, 1, 7, 9)]  # Sunday
    assert fires("cron(0 9 ? * 2 *)", after, 1) == [utc(2024, 1, 1, 9)]  # Monday
    assert fires("cron(0 9 ? * 7 *)", after, 1) == [utc(2024, 1, 6, 9)]  # Saturday
    assert fires("cron(0 9 ? * MON-FRI *)", after, 6)[-1] == utc(2024, 1, 8, 9)
    assert fires("cron(0 9 ? * 2-6 *)", after, 6) == fires("cron(0 9 ? * MON-FRI *)", after, 6)


def test_classic_day_of_week_counts_from_sunday_as_0_or_7() -> None:
    after = utc(2024, 1, 1)
    assert fires("0 9 * * 0", after, 1) == [utc(2024, 1, 7, 9)]
    assert fires("0 9 * * 7", after, 1) == [utc(2024, 1, 7, 9)]
    assert fires("0 9 * * 1", after, 1) == [utc(2024, 1, 1, 9)]
    assert fires("cron(0 9 * * 1-5)", after, 5) == fires("cron(0 9 ? * MON-FRI *)", after, 5)
    assert fires("0 9 * * sun", after, 1) == [utc(2024, 1, 7, 9)]


def test_classic_cron_runs_when_either_day_field_matches() -> None:
    # Vixie: both day fields restricted → the 13th OR any Friday.
    assert fires("0 0 13 * 5", utc(2024, 1, 1), 4) == [
        utc(2024, 1, 5),
        utc(2024, 1, 12),
        utc(2024, 1, 13),
        utc(2024, 1, 19),
    ]
    # ... but a field starting with '*' does not restrict: odd days AND Fridays.
    assert fires("0 0 */2 * 5", utc(2024, 1, 1), 2) == [utc(2024, 1, 5), utc(2024, 1, 19)]


def test_classic_question_mark_means_any() -> None:
    assert fires("0 0 ? * *", utc(2024, 1, 1), 2) == [utc(2024, 1, 2), utc(2024, 1, 3)]


@pytest.mark.parametrize(
    ("shorthand", "first"),
    [
        ("@hourly", utc(2024, 1, 1, 1)),
        ("@daily", utc(2024, 1, 2)),
        ("@weekly", utc(2024, 1, 7)),
        ("@monthly", utc(2024, 2, 1)),
        ("@yearly", utc(2025, 1, 1)),
    ],
)
def test_shorthands(shorthand: str, first: datetime) -> None:
    assert parse_schedule(shorthand).next_after(utc(2024, 1, 1)) == first


def test_day_of_month_L_is_the_last_day() -> None:
    assert fires("cron(0 0 L * ? *)", utc(2024, 1, 15), 4) == [
        utc(2024, 1, 31),
        utc(2024, 2, 29),
        utc(2024, 3, 31),
        utc(2024, 4, 30),
    ]
    assert fires("cron(0 0 L 2 ? *)", utc(2024, 3, 1), 1) == [utc(2025, 2, 28)]
    assert fires("cron(0 0 1,L * ? *)", utc(2024, 1, 15), 2) == [utc(2024, 1, 31), utc(2024, 2, 1)]


def test_day_of_month_LW_is_the_last_weekday() -> None:
    assert fires("cron(0 0 LW 3 ? 2024)", utc(2024, 1, 1), 1) == [utc(2024, 3, 29)]  # 31st Sun
    assert fires("cron(0 0 LW 8 ? 2024)", utc(2024, 1, 1), 1) == [utc(2024, 8, 30)]  # 31st Sat
    assert fires("cron(0 0 LW 4 ? 2024)", utc(2024, 1, 1), 1) == [utc(2024, 4, 30)]  # a Tue


@pytest.mark.parametrize(
    ("expression", "day"),
    [
        ("cron(0 0 15W 6 ? 2024)", utc(2024, 6, 14)),  # 15th a Saturday → Friday
        ("cron(0 0 15W 9 ? 2024)", utc(2024, 9, 16)),  # 15th a Sunday → Monday
        ("cron(0 0 15W 5 ? 2024)", utc(2024, 5, 15)),  # a Wednesday: itself
        ("cron(0 0 1W 6 ? 2024)", utc(2024, 6, 3)),  # Saturday the 1st → Monday the 3rd
        ("cron(0 0 30W 6 ? 2024)", utc(2024, 6, 28)),  # Sunday the last → Friday
        ("cron(0 0 31W 6 ? 2024)", utc(2024, 6, 28)),  # past a 30-day month: from the 30th
        ("cron(0 0 31W 4 ? 2024)", utc(2024, 4, 30)),  # 30th of April a Tuesday
    ],
)
def test_day_of_month_W_is_nearest_weekday_in_month(expression: str, day: datetime) -> None:
    assert fires(expression, utc(2024, 1, 1), 1) == [day]


def test_day_of_week_nL_is_the_last_such_day() -> None:
    assert fires("cron(0 9 ? * 6L *)", utc(2024, 1, 1), 3) == [
        utc(2024, 1, 26, 9),
        utc(2024, 2, 23, 9),
        utc(2024, 3, 29, 9),
    ]
    assert fires("cron(0 9 ? * FRIL *)", utc(2024, 1, 1), 3) == fires(
        "cron(0 9 ? * 6L *)", utc(2024, 1, 1), 3
    )
    assert fires("0 9 * * 5L", utc(2024, 1, 1), 1) == [utc(2024, 1, 26, 9)]  # classic 5=FRI


def test_day_of_week_L_alone_is_saturday_in_aws_cron() -> None:
    assert fires("cron(0 0 ? * L *)", utc(2024, 1, 1), 1) == [utc(2024, 1, 6)]


def test_day_of_week_hash_is_the_nth_such_day() -> None:
    assert fires("cron(0 9 ? * 2#3 *)", utc(2024, 1, 1), 2) == [
        utc(2024, 1, 15, 9),
        utc(2024, 2, 19, 9),
    ]
    assert fires("cron(0 9 ? * MON#1 *)", utc(2024, 1, 1, 10), 1) == [utc(2024, 2, 5, 9)]
    assert fires("0 9 * * 1#3", utc(2024, 1, 1), 1) == [utc(2024, 1, 15, 9)]
    # A fifth Friday only in months that have one.
    assert fires("cron(0 0 ? * 6#5 *)", utc(2024, 1, 1), 3) == [
        utc(2024, 3, 29),
        utc(2024, 5, 31),
        utc(2024, 8, 30),
    ]


def test_rare_dates_are_found_without_scanning() -> None:
    assert fires("cron(0 0 29 2 ? *)", utc(2024, 3, 1), 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    assert fires("cron(0 0 29 2 ? *)", utc(2096, 3, 1), 1) == [utc(2104, 2, 29)]  # 2100: no
    assert fires("cron(0 0 ? 2 6#5 *)", utc(2024, 3, 1), 1) == [utc(2036, 2, 29)]


def test_year_field_and_its_end() -> None:
    schedule = parse_schedule("cron(0 0 1 1 ? 2024-2025)")
    assert schedule.next_after(utc(2020, 6, 1)) == utc(2024, 1, 1)
    assert schedule.next_after(utc(2024, 1, 1)) == utc(2025, 1, 1)
    assert schedule.next_after(utc(2025, 1, 1)) is None
    assert schedule.ticks_between(utc(2000, 1, 1), utc(2100, 1, 1), 10) == [
        utc(2024, 1, 1),
        utc(2025, 1, 1),
    ]
    assert fires("cron(0 0 1 1 ? 2030/10)", utc(2024, 1, 1), 2) == [
        utc(2030, 1, 1),
        utc(2040, 1, 1),
    ]
    assert parse_schedule("cron(0 0 29 2 ? 2025-2027)").next_after(utc(2024, 6, 1)) is None


def test_schedules_end_after_2199() -> None:
    assert parse_schedule("cron(0 0 31 12 ? *)").next_after(utc(2199, 12, 31)) is None
    assert parse_schedule("0 0 31 12 *").next_after(utc(2199, 12, 31)) is None


# --------------------------------------------------------------------------- cron errors


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 0 * * * *)", "day-of-week '*': use '?' here"),
        ("cron(0 0 * * MON *)", "day-of-month '*': use '?' here"),
        ("cron(0 0 ? * ? *)", "are both '?'; exactly one of them must be '?'"),
        ("cron(0 0 15 * MON *)", "day-of-month '15' and day-of-week 'MON' are both set"),
        ("cron(60 0 * * ? *)", "minutes '60': 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "hours '24': 24 is out of range 0-23"),
        ("cron(0 0 32 * ? *)", "day-of-month '32': 32 is out of range 1-31"),
        ("cron(0 0 0 * ? *)", "day-of-month '0': 0 is out of range 1-31"),
        ("cron(0 0 1 13 ? *)", "month '13': 13 is out of range 1-12 or JAN-DEC"),
        ("cron(0 0 1 FOO ? *)", "month 'FOO': 'FOO' is not a number or a name"),
        ("cron(0 0 ? * 8 *)", "day-of-week '8': 8 is out of range 1-7 (1=SUN)"),
        ("cron(0 0 ? * 0 *)", "day-of-week '0': 0 is out of range 1-7 (1=SUN)"),
        ("cron(0 0 1 1 ? 1969)", "year '1969': 1969 is out of range 1970-2199"),
        ("cron(0 0 1 1 ? 2200)", "year '2200': 2200 is out of range 1970-2199"),
        ("cron(x 0 * * ? *)", "minutes 'x': 'x' is not a number; allowed: 0-59"),
        ("cron(*/0 0 * * ? *)", "minutes '*/0': the increment after / must be 1 or more"),
        ("cron(*/x 0 * * ? *)", "minutes '*/x': the increment after / must be a whole number"),
        ("cron(0 5-1 * * ? *)", "hours '5-1': range 5-1 runs backwards"),
        ("cron(1,,2 0 * * ? *)", "minutes '1,,2': empty item in the list"),
        ("cron(0 ? * * ? *)", "hours '?': '?' is only allowed in day-of-month or day-of-week"),
        ("cron(0 0 1,? * ? *)", "day-of-month '1,?': '?' must be the whole field"),
        ("cron(0 0 1-5W * ? *)", "day-of-month '1-5W': W needs a single day"),
        ("cron(0 0 W * ? *)", "day-of-month 'W': W needs a single day"),
        ("cron(0 0 L-2 * ? *)", "day-of-month 'L-2': L stands alone"),
        ("cron(0 0 ? * 2#6 *)", "day-of-week '2#6': the week number after # must be 1-5"),
        ("cron(0 0 ? * 2#0 *)", "day-of-week '2#0': the week number after # must be 1-5"),
        ("cron(0 0 ? * 9#2 *)", "day-of-week '9#2': 9 is out of range"),
        ("cron(0 0 ? * 1,2#9 *)", "day-of-week '1,2#9': '2#9': the week number"),
        ("cron(0 0 ? * #2 *)", "day-of-week '#2': # needs a day and a week number"),
        ("cron(0 0 30 2 ? *)", "day-of-month '30': no selected month (FEB) has day 30"),
        ("cron(0 0 31 4,6 ? *)", "no selected month (APR,JUN) has day 31"),
        ("cron(0 0 * *)", "cron() needs 6 fields (minutes hours day-of-month month"),
        ("cron(0 0 * * ? * *)", "got 7"),
        ("cron(0 0 * * ? *", "is missing its closing ')'"),
        ("0 0 * * ? *", "has 6 fields: write the AWS form as cron(0 0 * * ? *)"),
        ("every day", "is not a schedule expression"),
        ("", "the schedule expression is empty"),
        ("0 0 * * 8", "classic cron day-of-week '8': 8 is out of range 0-7 (0 and 7=SUN)"),
        ("0 0 * * L", "classic cron day-of-week 'L': L needs a day before it"),
        ("61 0 * * *", "classic cron minute '61'"),
    ],
)
def test_cron_errors_name_the_field(expression: str, message: str) -> None:
    assert message in error_of(expression)


def test_every_bad_field_is_reported_at_the_path() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_schedule("cron(x 25 * FOO ? 1900)", path="jobs.nightly.schedule")
    errors = info.value.errors
    assert [e.path for e in errors] == ["jobs.nightly.schedule"] * 4
    text = " | ".join(e.message for e in errors)
    for field in ("minutes 'x'", "hours '25'", "month 'FOO'", "year '1900'"):
        assert field in text


# ----------------------------------------------------------------------------------- rate


def test_rate_is_a_fixed_grid_from_the_epoch() -> None:
    schedule = parse_schedule("rate(7 minutes)")
    ticks = schedule.ticks_between(utc(2024, 5, 5, 5, 5, 5), utc(2024, 5, 5, 6), 100)
    assert ticks
    assert all((t - EPOCH) % timedelta(minutes=7) == timedelta(0) for t in ticks)
    assert [b - a for a, b in pairwise(ticks)] == [timedelta(minutes=7)] * (len(ticks) - 1)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("rate(5 minutes)", utc(2024, 1, 1, 0, 2, 30), utc(2024, 1, 1, 0, 5)),
        ("rate(5 minutes)", utc(2024, 1, 1, 0, 5), utc(2024, 1, 1, 0, 10)),  # strictly after
        ("rate(1 minute)", utc(2024, 1, 1, 0, 0, 0, 1), utc(2024, 1, 1, 0, 1)),
        ("rate(1 hour)", utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1)),
        ("rate(2 hours)", utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 2)),
        ("rate(1 day)", utc(2024, 1, 1, 12), utc(2024, 1, 2)),
        ("rate(3 days)", utc(1970, 1, 2), utc(1970, 1, 4)),
    ],
)
def test_rate_next_after(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(after) == expected


def test_rate_ignores_the_time_zone_and_dst() -> None:
    ny = parse_schedule("rate(1 day)", NY)
    assert ny.next_after(utc(2024, 3, 9, 12)) == utc(2024, 3, 10)  # 00:00Z, not local
    hourly = parse_schedule("rate(1 hour)", NY)
    ticks = hourly.ticks_between(utc(2024, 3, 10), utc(2024, 3, 11), 100)
    assert len(ticks) == 24  # the short local day still has 24 UTC hours


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", "rate(1 minutes): use the singular for 1, rate(1 minute)"),
        ("rate(1 hours)", "use the singular for 1, rate(1 hour)"),
        ("rate(5 minute)", "rate(5 minute): use the plural, rate(5 minutes)"),
        ("rate(2 day)", "use the plural, rate(2 days)"),
        ("rate(0 minutes)", "rate value '0' must be a whole number of 1 or more"),
        ("rate(-5 minutes)", "rate value '-5' must be a whole number"),
        ("rate(1.5 hours)", "rate value '1.5' must be a whole number"),
        ("rate(5 weeks)", "rate unit 'weeks' must be minute(s), hour(s) or day(s)"),
        ("rate(5)", "rate() needs a value and a unit"),
        ("rate(999999999 days)", "longer than 1000 years"),
    ],
)
def test_rate_errors(expression: str, message: str) -> None:
    assert message in error_of(expression)


# ------------------------------------------------------------------------------------- at


def test_at_is_in_the_schedule_time_zone_and_runs_once() -> None:
    schedule = parse_schedule("at(2030-01-31T09:00:00)", "Asia/Tokyo")
    when = utc(2030, 1, 31, 0)  # 09:00 JST
    assert schedule.next_after(utc(2024, 1, 1)) == when
    assert schedule.next_after(when - timedelta(microseconds=1)) == when
    assert schedule.next_after(when) is None
    assert schedule.next_after(utc(2031, 1, 1)) is None
    assert schedule.ticks_between(utc(2024, 1, 1), utc(2040, 1, 1), 5) == [when]
    assert schedule.ticks_between(utc(2024, 1, 1), when - timedelta(seconds=1), 5) == []


def test_at_in_a_repeated_hour_is_the_first_occurrence() -> None:
    schedule = parse_schedule("at(2024-11-03T01:30:00)", NY)
    assert schedule.next_after(utc(2024, 1, 1)) == utc(2024, 11, 3, 5, 30)  # EDT


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("at(2024-03-10T02:30:00)", "does not exist in America/New_York"),
        ("at(2024-02-30T00:00:00)", "at(2024-02-30T00:00:00): day is out of range for month"),
        ("at(2024-01-01 00:00:00)", "the time must be yyyy-mm-ddThh:mm:ss"),
        ("at(2024-01-01T00:00)", "the time must be yyyy-mm-ddThh:mm:ss"),
        ("at(2024-01-01T25:00:00)", "hour must be in 0..23"),
        ("at(2300-01-01T00:00:00)", "the year must be 1970-2199"),
    ],
)
def test_at_errors(expression: str, message: str) -> None:
    assert message in error_of(expression, NY)


# ------------------------------------------------------------------------------ time zones


def test_unknown_time_zone_names_timezone() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_schedule("rate(1 day)", "Mars/Olympus_Mons")
    assert "timezone 'Mars/Olympus_Mons' is not a known IANA time zone" in str(info.value)
    assert info.value.errors[0].path == "schedule"


@pytest.mark.parametrize("zone", ["", " UTC", "../etc/passwd", "/etc/localtime"])
def test_malformed_time_zones_are_refused(zone: str) -> None:
    assert "is not a known IANA time zone" in error_of("rate(1 day)", zone)


def test_time_zone_error_can_have_its_own_path_and_joins_other_errors() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_schedule(
            "rate(5 minute)", "Nowhere/Land", path="job.schedule", timezone_path="job.timezone"
        )
    assert [e.path for e in info.value.errors] == ["job.timezone", "job.schedule"]


def test_cron_runs_at_local_wall_clock_time() -> None:
    schedule = parse_schedule("cron(0 9 * * ? *)", "Europe/London")
    assert schedule.next_after(utc(2024, 1, 10)) == utc(2024, 1, 10, 9)  # GMT
    assert schedule.next_after(utc(2024, 7, 10)) == utc(2024, 7, 10, 8)  # BST
    kolkata = parse_schedule("cron(0 9 * * ? *)", "Asia/Kolkata")
    assert kolkata.next_after(utc(2024, 1, 10)) == utc(2024, 1, 10, 3, 30)


def test_new_york_spring_forward_skips_the_missing_time() -> None:
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    schedule = parse_schedule("cron(30 2 * * ? *)", NY)
    assert schedule.ticks_between(utc(2024, 3, 8), utc(2024, 3, 12, 12), 10) == [
        local(NY, 2024, 3, 8, 2, 30),
        local(NY, 2024, 3, 9, 2, 30),
        local(NY, 2024, 3, 11, 2, 30),
        local(NY, 2024, 3, 12, 2, 30),
    ]
    assert schedule.next_after(local(NY, 2024, 3, 9, 2, 30)) == utc(2024, 3, 11, 6, 30)


def test_new_york_fall_back_runs_once_at_the_first_occurrence() -> None:
    # 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    schedule = parse_schedule("cron(30 1 * * ? *)", NY)
    assert schedule.ticks_between(utc(2024, 11, 2, 12), utc(2024, 11, 4, 12), 10) == [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, the first one
        utc(2024, 11, 4, 6, 30),  # 01:30 EST the next day
    ]
    # Asked from inside the second pass of the hour: nothing more that day.
    second_pass = local(NY, 2024, 11, 3, 1, 10, fold=1)
    assert schedule.next_after(second_pass) == utc(2024, 11, 4, 6, 30)


def test_new_york_hourly_counts_across_both_changes() -> None:
    hourly = parse_schedule("cron(0 * * * ? *)", NY)
    spring = hourly.ticks_between(local(NY, 2024, 3, 9, 23), local(NY, 2024, 3, 10, 23), 100)
    assert len(spring) == 23
    fall = hourly.ticks_between(local(NY, 2024, 11, 2, 23), local(NY, 2024, 11, 3, 23), 100)
    assert len(fall) == 24  # a 25-hour day, the repeated 01:00 once
    assert fall == sorted(set(fall))


def test_every_fifteen_minutes_skips_the_repeated_hour() -> None:
    schedule = parse_schedule("cron(*/15 * * * ? *)", NY)
    ticks = schedule.ticks_between(utc(2024, 11, 3, 5), utc(2024, 11, 3, 7), 100)
    assert ticks == [
        utc(2024, 11, 3, 5, 15),  # 01:15 EDT
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 3, 5, 45),
        # 06:00Z-06:59Z is 01:00-01:59 EST again: skipped
        utc(2024, 11, 3, 7, 0),  # 02:00 EST
    ]


def test_london_changes() -> None:
    # 2024-03-31: 01:00 GMT → 02:00 BST. 2024-10-27: 02:00 BST → 01:00 GMT.
    gap = parse_schedule("cron(30 1 * * ? *)", "Europe/London")
    assert gap.ticks_between(utc(2024, 3, 30), utc(2024, 4, 1, 12), 5) == [
        utc(2024, 3, 30, 1, 30),
        utc(2024, 4, 1, 0, 30),
    ]
    assert gap.ticks_between(utc(2024, 10, 26, 12), utc(2024, 10, 28, 12), 5) == [
        utc(2024, 10, 27, 0, 30),  # 01:30 BST
        utc(2024, 10, 28, 1, 30),
    ]


def test_lord_howe_half_hour_changes() -> None:
    zone = "Australia/Lord_Howe"
    # 2024-10-06: 02:00 (+10:30) jumps to 02:30 (+11:00); 02:15 does not exist.
    skipped = parse_schedule("cron(15 2 * * ? *)", zone)
    assert skipped.ticks_between(utc(2024, 10, 4), utc(2024, 10, 7), 5) == [
        utc(2024, 10, 4, 15, 45),  # Oct 5 02:15 +10:30
        utc(2024, 10, 6, 15, 15),  # Oct 7 02:15 +11:00
    ]
    # 02:45 exists on the change day (after the gap).
    after_gap = parse_schedule("cron(45 2 * * ? *)", zone)
    assert after_gap.next_after(utc(2024, 10, 5, 12)) == utc(2024, 10, 5, 15, 45)
    # 2024-04-07: 02:00 (+11:00) falls back to 01:30 (+10:30); 01:45 happens twice.
    once = parse_schedule("cron(45 1 * * ? *)", zone)
    assert once.ticks_between(utc(2024, 4, 6, 12), utc(2024, 4, 7, 12), 5) == [
        utc(2024, 4, 6, 14, 45),  # 01:45 +11:00, the first
    ]


def test_ticks_between_is_ordered_bounded_and_limited() -> None:
    schedule = parse_schedule("cron(0 * * * ? *)", NY)
    start, end = utc(2024, 3, 10, 5), utc(2024, 3, 10, 9)
    all_ticks = schedule.ticks_between(start, end, 100)
    # 00:00, 01:00, (02:00 missing), 03:00, 04:00 EDT = 05Z excluded, 06Z, 07Z, 08Z, 09Z
    assert all_ticks == [utc(2024, 3, 10, 6), utc(2024, 3, 10, 7), utc(2024, 3, 10, 8), end]
    assert schedule.ticks_between(start, end, 2) == all_ticks[:2]
    assert schedule.ticks_between(start, end, 0) == []
    assert schedule.ticks_between(end, start, 10) == []


@pytest.mark.parametrize(
    ("zone", "year"),
    [
        (NY, 2024),
        ("Europe/London", 2025),
        ("Australia/Lord_Howe", 2024),
        ("Europe/Dublin", 2024),  # negative DST in the tz database
        ("Pacific/Apia", 2011),  # skipped a whole day (2011-12-30)
    ],
)
def test_matches_a_minute_by_minute_reference(zone: str, year: int) -> None:
    """Reference: fire at a UTC minute when its local time matches and is the first
    occurrence (``fold == 0``); times that do not exist never appear from UTC."""
    tz = ZoneInfo(zone)
    transitions = []
    t = utc(year, 1, 1)
    while t.year == year:
        if (t + timedelta(hours=1)).astimezone(tz).utcoffset() != t.astimezone(tz).utcoffset():
            transitions.append(t)
        t += timedelta(hours=1)
    assert transitions
    minutes, hours = {0, 15, 30, 45}, {0, 1, 2, 3, 23}
    schedule = parse_schedule("cron(0/15 0-3,23 * * ? *)", zone)
    for moment in transitions:
        start, end = moment - timedelta(days=1), moment + timedelta(days=1)
        expected = []
        u = start + timedelta(minutes=1)
        while u <= end:
            lt = u.astimezone(tz)
            if lt.fold == 0 and lt.minute in minutes and lt.hour in hours:
                expected.append(u)
            u += timedelta(minutes=1)
        assert schedule.ticks_between(start, end, 1000) == expected, moment


# ------------------------------------------------------------------------- flexible window


def test_flexible_offset_is_deterministic_and_in_range() -> None:
    tick = utc(2024, 1, 1, 12)
    first = flexible_offset("nightly-report", tick, 15)
    assert first == flexible_offset("nightly-report", tick, 15)
    # The same instant written in another zone is the same tick.
    assert first == flexible_offset("nightly-report", tick.astimezone(ZoneInfo(NY)), 15)
    offsets = [flexible_offset(f"job-{i}", tick + timedelta(hours=i), 15) for i in range(300)]
    assert all(timedelta(0) <= o < timedelta(minutes=15) for o in offsets)
    assert all(o.microseconds == 0 for o in offsets)
    assert len(set(offsets)) > 100  # spread out, not one value


def test_flexible_offset_depends_on_name_and_tick() -> None:
    tick = utc(2024, 1, 1, 12)
    by_name = {flexible_offset(f"job-{i}", tick, 60) for i in range(20)}
    by_tick = {flexible_offset("job", tick + timedelta(days=i), 60) for i in range(20)}
    assert len(by_name) > 1
    assert len(by_tick) > 1


def test_flexible_offset_pinned_value() -> None:
    """Pinned so a change of the hash (which would move every job's runs) is noticed."""
    assert flexible_offset("nightly-report", utc(2024, 1, 1, 12), 15) == timedelta(
        seconds=PINNED_OFFSET_SECONDS
    )


def test_flexible_offset_without_a_window() -> None:
    assert flexible_offset("job", utc(2024, 1, 1), 0) == timedelta(0)
    with pytest.raises(ValueError, match="window_minutes"):
        flexible_offset("job", utc(2024, 1, 1), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        flexible_offset("job", datetime(2024, 1, 1), 5)


PINNED_OFFSET_SECONDS = 864
