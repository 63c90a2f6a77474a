"""rrule searches (redbeat.schedules.rrule) against python-dateutil walking from dtstart.

``next_after`` starts dateutil's walk near the moment rather than at ``dtstart``,
and ``count_between`` counts in one walk what ``next_after`` finds one call
after the other.  Both must answer exactly what the straightforward ways do:
dateutil's own ``after`` from ``dtstart``, and the chain of ``next_after``
calls.  The cases cluster around daylight-saving changes (where a wall time
the clocks skip is an instant after later wall times) and use zones with
offsets of whole hours, half hours (Kolkata) and a 30-minute change (Lord Howe).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redbeat import schedules
from redbeat.schedules import rrule

UTC = timezone.utc
ZONES: list[tzinfo | None] = [
    None,  # the rule's own (fixed) offset, as every decoded rule has
    ZoneInfo('Europe/Paris'),
    ZoneInfo('America/New_York'),
    ZoneInfo('Australia/Lord_Howe'),
    ZoneInfo('Asia/Kolkata'),
]
#: Instants near which offsets change (2026): Paris, New York, Lord Howe.
CHANGES = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    datetime(2026, 6, 1, tzinfo=UTC),  # none near
]
PERIOD = {
    du.WEEKLY: timedelta(weeks=1),
    du.DAILY: timedelta(days=1),
    du.HOURLY: timedelta(hours=1),
    du.MINUTELY: timedelta(minutes=1),
}


@st.composite
def rules(draw: st.DrawFn) -> tuple[rrule, datetime, tzinfo | None]:
    """A rule, a moment near an offset change, and the zone it is read in."""
    near = st.one_of(st.integers(-3 * 86400, 3 * 86400), st.integers(-3 * 3600, 3 * 3600))
    moment = draw(st.sampled_from(CHANGES)) + timedelta(seconds=draw(near))
    freq = draw(st.sampled_from(list(PERIOD)))
    interval = draw(st.integers(1, 40))
    step = PERIOD[freq] * interval
    # dateutil walks from dtstart: keep the walk short (up to ~900 periods, as the
    # search itself walks where an offset changed lately).
    back = draw(st.integers(0, 900)) * step + timedelta(seconds=draw(st.integers(0, 3600)))
    # A fixed offset (as every rule read from Redis has), or a zone (made in Python).
    offset = draw(st.sampled_from([0, 60, 330, -300, 630, None]))
    own = (
        draw(st.sampled_from(ZONES[1:])) if offset is None else timezone(timedelta(minutes=offset))
    )
    dtstart = (moment - back).astimezone(own)
    fields: dict[str, Any] = {}
    if draw(st.booleans()) and freq in (du.DAILY, du.WEEKLY):
        fields['byhour'] = sorted(draw(st.sets(st.integers(0, 23), min_size=1, max_size=3)))
    if draw(st.booleans()) and freq in (du.HOURLY, du.DAILY, du.WEEKLY):
        fields['byminute'] = sorted(draw(st.sets(st.integers(0, 59), min_size=1, max_size=3)))
    if draw(st.booleans()) and freq != du.MINUTELY:
        fields['byweekday'] = sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=4)))
    if draw(st.booleans()):
        fields['count'] = draw(st.integers(1, 1200))
    elif draw(st.booleans()):
        fields['until'] = moment + timedelta(seconds=draw(st.integers(-86400, 3 * 86400)))
    rule = rrule(freq, dtstart=dtstart, interval=interval, **fields)
    return rule, moment, draw(st.sampled_from(ZONES))


def dateutils(rule: rrule, zone: tzinfo | None) -> du.rrule:
    """The same rule walked by dateutil from its dtstart (in ``zone``'s wall time)."""
    if zone is None:
        return rule.rrule
    start = rule.dtstart.astimezone(zone)
    until = None if rule.until is None else rule.until.astimezone(zone)
    return rule.rrule.replace(dtstart=start, until=until)


def in_zone(moment: datetime, zone: tzinfo | None) -> datetime:
    """An instant as next_after hands it to dateutil: in the zone (walls compared)."""
    return moment.astimezone(UTC).astimezone(UTC if zone is None else zone)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rules(), later=st.lists(st.integers(0, 3 * 86400), min_size=1, max_size=4))
def test_next_after_is_dateutils_after(
    case: tuple[rrule, datetime, tzinfo | None], later: list[int]
) -> None:
    """Started a period before the moment (or far back where the offset just
    changed), the search finds what dateutil finds walking from dtstart."""
    rule, moment, zone = case
    reference = dateutils(rule, zone)
    for seconds in later:  # moments out of order, too: the searches are cached
        probe = moment + timedelta(seconds=seconds - 86400)
        assert rule.next_after(probe, zone) == reference.after(in_zone(probe, zone))


def chain_count(rule: rrule, lo: datetime, hi: datetime, most: int, zone: tzinfo | None) -> int:
    """How many occurrences ``next_after`` finds one after the other in ``[lo, hi]``,
    each asked after the instant of the one before (as redbeat.timing asks)."""
    found = 0
    moment = rule.next_after(lo - timedelta(microseconds=1), zone)
    while moment is not None and moment <= hi and found < most:
        found += 1
        moment = rule.next_after(moment.astimezone(UTC), zone)
    return found


def dateutils_count(
    reference: du.rrule, lo: datetime, hi: datetime, most: int, zone: tzinfo | None
) -> int:
    """The same, by dateutil's ``after`` from dtstart (asked as next_after asks)."""
    found = 0
    moment = reference.after(in_zone(lo - timedelta(microseconds=1), zone))
    while moment is not None and moment <= hi and found < most:
        found += 1
        moment = reference.after(in_zone(moment, zone))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=rules(),
    start=st.integers(-2 * 86400, 86400),
    span=st.integers(0, 2 * 86400),
    most=st.sampled_from([1, 7, 100, 10_000]),
)
def test_count_between_is_the_chain_of_searches(
    case: tuple[rrule, datetime, tzinfo | None], start: int, span: int, most: int
) -> None:
    rule, moment, zone = case
    lo = moment + timedelta(seconds=start)
    hi = lo + timedelta(seconds=span)
    counted = rule.count_between(lo, hi, most, zone)
    assert counted == chain_count(rule, lo, hi, most, zone)
    assert counted == dateutils_count(dateutils(rule, zone), lo, hi, most, zone)


PARIS = ZoneInfo('Europe/Paris')


def test_count_across_the_skipped_hour_counts_each_instant_once() -> None:
    """Paris springs forward at 02:00: dateutil still yields the wall times 02:00,
    02:20, 02:40 (instants of CET: 01:00, 01:20, 01:40 UTC), then 03:00, 03:20, 03:40
    (the same instants, CEST).  next_after moves on from 02:00 to 03:20 (02:00 read
    back in Paris is 03:00), so each instant is one occurrence."""
    rule = rrule(du.MINUTELY, interval=20, dtstart=datetime(2026, 3, 28, tzinfo=UTC))
    lo, hi = datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 2, tzinfo=UTC)
    walls = list(rule._zoned(PARIS).between(lo.astimezone(PARIS), hi.astimezone(PARIS), inc=True))
    assert len(walls) == 8  # 01:40 02:00 02:20 02:40 03:00 03:20 03:40 04:00
    counted = rule.count_between(lo, hi, 100, PARIS)
    assert counted == chain_count(rule, lo, hi, 100, PARIS) == 5  # 00:40 ... 02:00 UTC


def test_search_starts_a_period_before_the_moment_where_the_offset_is_steady() -> None:
    """An hourly rule started a month ago: dateutil is asked about one or two hours."""
    rule = rrule(du.HOURLY, dtstart=datetime(2026, 5, 1, 0, 17, tzinfo=UTC))
    moment = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    assert rule.next_after(moment, PARIS) == datetime(2026, 6, 1, 13, 17, tzinfo=UTC)
    near = rule._close[PARIS][1]
    assert moment - timedelta(hours=2) <= near._dtstart <= moment
    assert rule.next_after(moment, UTC) == datetime(2026, 6, 1, 13, 17, tzinfo=UTC)


def test_search_starts_far_back_where_the_offset_changed_lately() -> None:
    """A rule in its dtstart's own zone (made in Python, not read from Redis) is
    searched by instants: after a change of offset it starts far back."""
    rule = rrule(du.HOURLY, dtstart=datetime(2026, 1, 1, 0, 17, tzinfo=PARIS))
    moment = datetime(2026, 3, 29, 12, tzinfo=UTC)  # Paris sprang forward this morning
    assert not schedules._steady(PARIS, moment)
    assert rule.next_after(moment) == datetime(2026, 3, 29, 12, 17, tzinfo=UTC)
    near = rule._near[None][1]
    assert near._dtstart <= moment - timedelta(hours=schedules._SEARCH_SLACK - 1)  # wall hours
    later = moment + timedelta(days=5)
    assert rule.next_after(later) == later + timedelta(minutes=17)
    assert later - timedelta(hours=2) <= rule._close[None][1]._dtstart <= later


def test_search_after_a_skipped_hour_answers_as_dateutil() -> None:
    """In its dtstart's zone, dateutil answers the first wall time whose instant is
    after the moment: 02:20 (skipped; an instant of CET) comes before 03:20 CEST."""
    rule = rrule(du.MINUTELY, interval=20, dtstart=datetime(2026, 3, 28, tzinfo=PARIS))
    moment = datetime(2026, 3, 29, 1, 5, tzinfo=UTC)  # 03:05 CEST
    found = rule.next_after(moment)
    assert found == rule.rrule.after(moment)
    assert found is not None and (found.hour, found.minute) == (2, 20)  # the wall time
    assert found.utcoffset() == timedelta(hours=1)  # 01:20 UTC (a time in a gap is
    # unequal to every instant: PEP 495)
    lo = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert rule.count_between(lo, moment + timedelta(minutes=30), 100) == chain_count(
        rule, lo, moment + timedelta(minutes=30), 100, None
    )


@pytest.mark.timeout(10)
def test_count_of_a_rule_no_day_matches_is_zero_at_once() -> None:
    """The walk stops at once where no day can match (dateutil would walk to 9999)."""
    rule = rrule(du.SECONDLY, dtstart=datetime(2026, 1, 1, tzinfo=UTC), bymonth=2, bymonthday=30)
    lo = datetime(2026, 6, 1, tzinfo=UTC)
    assert rule.count_between(lo, lo + timedelta(days=3000), 100) == 0


@pytest.mark.timeout(10)
def test_count_of_a_secondly_rule_started_centuries_ago_is_bounded() -> None:
    rule = rrule(du.SECONDLY, interval=7, dtstart=datetime(1, 1, 1, tzinfo=UTC))
    lo = datetime(2026, 6, 1, tzinfo=UTC)
    assert rule.count_between(lo, lo + timedelta(days=365), 100) == 100
    assert rule.count_between(lo, lo + timedelta(seconds=70), 100) in (10, 11)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=rules(),
    other=st.sampled_from(ZONES),
    later=st.lists(st.integers(0, 3 * 86400), min_size=1, max_size=5),
    bound=st.sampled_from([1, 2, 1024]),
)
def test_remembered_answers_are_the_searches_answers(
    case: tuple[rrule, datetime, tzinfo | None],
    other: tzinfo | None,
    later: list[int],
    bound: int,
) -> None:
    """Asked again (entries alike share one rule), in another zone or the same, with
    the remembered answers emptied when full: every answer is dateutil's."""
    rule, moment, zone = case
    probes = [moment + timedelta(seconds=s - 86400) for s in later]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schedules, '_ANSWERS_MAX', bound)
        for _ in range(2):
            for probe in probes:
                for z in (zone, other):
                    assert rule.next_after(probe, z) == dateutils(rule, z).after(in_zone(probe, z))
                assert len(rule._answers) <= bound
