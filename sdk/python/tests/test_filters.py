"""Filters: the server's count, scroll, delete and filtered search agree with a naive
Python evaluator of the filter language on random payloads and random filters."""

from __future__ import annotations

import random
from typing import Any, Dict, List

import numpy as np
import pytest

from naive_filter import filter_matches, random_filter, random_payload
from vectron import Client

N = 600


@pytest.fixture(scope="module")
def filtered(client: Client) -> Any:
    rng = random.Random(20261201)
    ids: List[Any] = [i for i in range(N // 2)] + [f"p{i}" for i in range(N // 2)]
    payloads: Dict[Any, Dict[str, Any]] = {i: random_payload(rng) for i in ids}
    name = f"filters-{rng.randrange(1 << 30)}"
    # Some fields indexed (bitmaps), others not (scans): both must agree with the reference.
    client.create_collection(
        name, 4, distance="euclid", shard_count=2,
        payload_indexes=[("city", "keyword"), ("n", "integer"), ("price", "float"), ("ok", "bool")],
    )  # fmt: skip
    vectors = np.random.default_rng(5).standard_normal((N, 4)).astype(np.float32)
    client.upsert(name, ids=ids, vectors=vectors, payloads=[payloads[i] for i in ids])
    yield name, ids, payloads, rng
    client.delete_collection(name)


def _key(id: Any) -> Any:
    return (type(id).__name__, id)


def test_random_filters_agree_with_the_naive_evaluator(client: Client, filtered: Any) -> None:
    name, ids, payloads, rng = filtered
    nonempty = 0
    for _ in range(120):
        f = random_filter(rng, ids)
        want = {_key(i) for i in ids if filter_matches(f, i, payloads[i])}
        nonempty += 0 < len(want) < N
        assert client.count(name, f) == len(want), f
        got = [_key(p.id) for p in client.scroll(name, filter=f, batch_size=97, with_payload=False)]
        assert len(got) == len(set(got)) and set(got) == want, f
    assert nonempty >= 40, "the random filters select something, not all or nothing"


def test_filtered_search_returns_only_and_all_matches(client: Client, filtered: Any) -> None:
    name, ids, payloads, rng = filtered
    checked = 0
    for _ in range(60):
        f = random_filter(rng, ids)
        want = {_key(i) for i in ids if filter_matches(f, i, payloads[i])}
        if not 0 < len(want) <= 200:
            continue
        r = client.search(name, [0.0, 0.0, 0.0, 0.0], top_k=200, ef=N, filter=f, with_payload=True)
        assert {_key(h.id) for h in r} == want, f
        assert all(h.payload == payloads[h.id] for h in r)
        checked += 1
    assert checked >= 10


def test_filter_shapes_from_the_readme(client: Client, filtered: Any) -> None:
    name, ids, payloads, _ = filtered
    f = {
        "must": [{"key": "city", "match": {"value": "London"}}, {"key": "price", "range": {"gte": 10, "lt": 100}}],
        "should": [{"key": "tags", "match": {"any": ["new", "sale"]}}],
        "must_not": [{"is_null": {"key": "owner"}}],
    }
    want = [i for i in ids if filter_matches(f, i, payloads[i])]
    assert want, "the data has such points"
    assert client.count(name, f) == len(want)
    # An empty filter passes everything; has_id tells ints from strings.
    assert client.count(name, {}) == N
    assert client.count(name, {"must": [{"has_id": [0, "p0", "0", 10**9]}]}) == 2


def test_delete_by_random_filter_removes_exactly_the_matches(client: Client, new_collection) -> None:
    rng = random.Random(99)
    name = new_collection(dimension=2, shard_count=2, payload_indexes=[("city", "keyword")])
    ids = list(range(300))
    payloads = {i: random_payload(rng) for i in ids}
    client.upsert(name, ids=ids, vectors=[[1.0, float(i)] for i in ids], payloads=[payloads[i] for i in ids])
    f = {"should": [{"key": "city", "match": {"any": ["London", "Paris"]}}, {"key": "n", "range": {"gt": 6}}]}
    doomed = {i for i in ids if filter_matches(f, i, payloads[i])}
    assert 0 < len(doomed) < 300
    assert client.delete(name, filter=f) == len(doomed)
    assert {p.id for p in client.scroll(name, with_payload=False)} == set(ids) - doomed
