"""The apply's adaptive worker limit (AIMD) and Retry-After reading: pure functions, plain unit tests."""

from __future__ import annotations

from kcprov.apply import AdaptiveLimit
from kcprov.keycloak import MAX_RETRY_AFTER, retry_after_seconds


def test_the_limit_starts_at_the_maximum_and_halves_on_each_overload_down_to_one():
    limit = AdaptiveLimit(8)
    assert limit.limit == 8
    for expected in (4, 2, 1, 1):
        limit.overloaded(now=0.0)
        assert limit.limit == expected


def test_the_limit_grows_by_one_after_a_run_of_successes_up_to_the_maximum():
    limit = AdaptiveLimit(4)
    limit.overloaded(now=0.0)
    limit.overloaded(now=0.0)
    assert limit.limit == 1
    limit.succeeded()
    assert limit.limit == 2
    limit.succeeded()
    assert limit.limit == 2  # two in a row needed at 2
    limit.succeeded()
    assert limit.limit == 3
    for _ in range(20):
        limit.succeeded()
    assert limit.limit == 4


def test_an_overload_restarts_the_run_of_successes():
    limit = AdaptiveLimit(8)
    limit.overloaded(now=0.0)  # 4
    for _ in range(3):
        limit.succeeded()
    limit.overloaded(now=0.0)  # 2
    limit.succeeded()
    assert limit.limit == 2


def test_nothing_starts_before_the_retry_after_and_only_below_the_limit():
    limit = AdaptiveLimit(4)
    limit.overloaded(now=100.0, retry_after=5.0)
    assert not limit.may_start(running=0, now=104.9)
    assert limit.may_start(running=1, now=105.0)
    assert not limit.may_start(running=2, now=105.0)
    limit.overloaded(now=101.0, retry_after=1.0)  # an earlier end does not shorten the wait
    assert not limit.may_start(running=0, now=104.0)


def test_a_maximum_below_one_means_one():
    assert AdaptiveLimit(0).limit == 1


def test_retry_after_is_read_as_seconds_or_an_http_date_and_bounded():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("Fri, 01 Jan 2100 00:00:00 GMT") == MAX_RETRY_AFTER
    assert retry_after_seconds("99999999") == MAX_RETRY_AFTER
    assert retry_after_seconds("-4") == 0.0
    for unreadable in (None, "", "soon", "nan"):
        assert retry_after_seconds(unreadable) is None
