"""The warm-up's decisions (kcprov.warmup): pure, so plain unit tests; the reads are pinned in test_request_counts."""

from kcprov.warmup import COLD_SECONDS_PER_CLIENT, LARGE_REALM, PAGE, cold, may_be_large


def test_only_a_realm_of_many_clients_or_of_unknown_size_is_looked_at():
    assert not may_be_large(10)
    assert not may_be_large(LARGE_REALM - 1)
    assert may_be_large(LARGE_REALM)
    assert may_be_large(None)  # `kcprov export`: the realm is read whole


def test_a_page_is_cold_when_it_took_database_time_per_client():
    assert cold(PAGE * 0.012, PAGE)  # 12 ms a client: loaded from the database (measured cold: 9-17 ms)
    assert cold(PAGE * 0.0025, PAGE)  # right after a mass create (measured 2.5-3.0 ms): the export is cold too
    assert not cold(PAGE * 0.0006, PAGE)  # 0.6 ms a client: the cache (measured warm: 0.1-0.6 ms)
    assert cold(PAGE * COLD_SECONDS_PER_CLIENT, PAGE)
    assert not cold(5.0, 0)  # an empty page says nothing
