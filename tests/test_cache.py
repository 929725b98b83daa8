from exporter.cache import BoundedCache


def test_bounded_cache_never_exceeds_its_limit_and_keeps_the_newest() -> None:
    c: BoundedCache[int, int] = BoundedCache(3)
    for i in range(10):
        assert c.put(i, i * i) == i * i
        assert len(c) <= 3
        assert c.get(i) == i * i
    assert c.get(0) is None
