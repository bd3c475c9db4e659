"""Time zones in vendor files (crmtier.ingest.parsing): offsets and zone names to UTC, around midnight."""
from __future__ import annotations

import pytest

from crmtier.ingest.parsing import parse_timestamp

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, utc", [
    ("2011-03-16 00:30:00+08:00", "2011-03-15 16:30:00"),      # after midnight at +08:00: previous UTC day
    ("2011-03-15 23:30:00-05:00", "2011-03-16 04:30:00"),      # before midnight at -05:00: next UTC day
    ("2011-03-15 23:30 -0500", "2011-03-16 04:30:00"),
    ("2011-03-15T00:30:00 Europe/Berlin", "2011-03-14 23:30:00"),   # CET, winter
    ("2011-07-15T00:30:00 Europe/Berlin", "2011-07-14 22:30:00"),   # CEST, summer time
    ("2011-07-15T00:30:00 europe/berlin", "2011-07-14 22:30:00"),   # case of the zone name does not matter
    ("2011-07-15T00:30:00+02:00[Europe/Berlin]", "2011-07-14 22:30:00"),  # RFC 9557
    ("7/15/2011 8:26 America/New_York", "2011-07-15 12:26:00"),     # "am" of America is not a.m.
    ("7/15/2011 8:26 PM America/New_York", "2011-07-16 00:26:00"),
])
def test_written_offsets_and_zones_win(text, utc):
    assert parse_timestamp(text, "mdy", "Asia/Shanghai") == (utc, None)


def test_naive_times_take_the_mapping_zone_and_bare_days_are_not_shifted():
    assert parse_timestamp("1997-09-30 07:30:00", "ymd", "Asia/Shanghai") == ("1997-09-29 23:30:00", None)
    assert parse_timestamp("1997-09-30 07:30:00", "ymd", "UTC") == ("1997-09-30 07:30:00", None)
    assert parse_timestamp("1997-09-30", "ymd", "Asia/Shanghai") == ("1997-09-30 00:00:00", None)


def test_an_unknown_zone_is_a_reason_not_a_guess():
    value, reason = parse_timestamp("2011-03-15 10:00:00 Mars/Phobos", "ymd", "UTC")
    assert value is None and "unknown time zone" in reason
