"""Points: upsert, get, delete, scroll, count against a real `vectron dev`."""

from __future__ import annotations

import time
from typing import Any, List

import grpc
import numpy as np
import pytest

import vectron
from vectron import Client


def test_upsert_dicts_and_get_keep_ids_and_payload_types(client: Client, new_collection) -> None:
    name = new_collection(dimension=3, distance="dot")
    payload = {
        "i": 2**53 + 1,  # past a double's exact integers
        "neg": -5,
        "f": 0.1,
        "whole": 7.0,
        "b": False,
        "s": "naïve ✓",
        "none": None,
        "list": [1, 2.5, "x", None, [True]],
        "obj": {"deep": {"k": [{"z": 1}]}},
    }
    points = [
        {"id": 7, "vector": [1.0, 0.0, 0.0], "payload": payload},
        {"id": "7", "vector": [0.0, 1.0, 0.0], "payload": {"kind": "string id"}},
        {"id": 2**64 - 1, "vector": [0.0, 0.0, 1.0]},
    ]
    r = client.upsert(name, points)
    assert (r.upserted, r.batches) == (3, 1) and r.seconds > 0
    assert client.count(name) == 3, "7 and \"7\" are two points"

    got = client.get(name, [2**64 - 1, "7", 7, 12345], with_vector=True)
    assert [p.id for p in got] == [2**64 - 1, "7", 7], "request order, missing ids left out"
    by_id = {(type(p.id), p.id): p for p in got}
    seven = by_id[(int, 7)]
    assert seven.payload == payload
    for k in ("i", "neg"):
        assert type(seven.payload[k]) is int
    assert type(seven.payload["whole"]) is float and type(seven.payload["b"]) is bool
    assert seven.vector == [1.0, 0.0, 0.0]
    assert by_id[(str, "7")].payload == {"kind": "string id"}
    assert by_id[(int, 2**64 - 1)].payload == {}

    bare = client.get(name, [7], with_payload=False)
    assert bare[0].payload is None and bare[0].vector is None

    # A second upsert of an id replaces the point.
    client.upsert(name, [{"id": 7, "vector": [0.5, 0.5, 0.0], "payload": {"v": 2}}])
    (again,) = client.get(name, [7], with_vector=True)
    assert again.payload == {"v": 2} and again.vector == [0.5, 0.5, 0.0]
    assert client.count(name) == 3


def test_numpy_float32_round_trip(client: Client, new_collection) -> None:
    name = new_collection(dimension=24, distance="euclid", shard_count=2)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 24)).astype(np.float32)
    ids = np.arange(1000, 1300, dtype=np.uint64)
    payloads = [{"row": int(i)} for i in range(300)]
    r = client.upsert(name, ids=ids, vectors=vectors, payloads=payloads, batch_size=64)
    assert (r.upserted, r.batches) == (300, 5)
    got = client.get(name, ids.tolist(), with_vector=True)
    assert len(got) == 300
    back = np.array([p.vector for p in got], dtype=np.float32)
    assert back.shape == vectors.shape
    assert np.array_equal(back, vectors), "float32 vectors come back bit for bit"
    assert [p.payload["row"] for p in got] == list(range(300))
    # Lists of lists and float64 arrays are accepted too.
    client.upsert(name, ids=[1, 2], vectors=vectors[:2].astype(np.float64).tolist())
    got = client.get(name, [1, 2], with_vector=True)
    assert np.array_equal(np.array([p.vector for p in got], dtype=np.float32), vectors[:2])


def test_wrong_dimension_is_dimension_mismatch_and_writes_nothing(client: Client, new_collection) -> None:
    name = new_collection(dimension=4)
    client.upsert(name, [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0]}])
    with pytest.raises(vectron.DimensionMismatch) as e:
        client.upsert(name, [{"id": 2, "vector": [1.0, 0.0, 0.0, 0.0]}, {"id": 3, "vector": [1.0, 2.0, 3.0]}])
    err = e.value
    assert isinstance(err, vectron.InvalidArgument)
    assert err.code == "DIMENSION_MISMATCH" and err.grpc_status == grpc.StatusCode.INVALID_ARGUMENT
    assert not err.retryable and "point 1" in err.message
    assert client.count(name) == 1, "a batch is validated whole before any shard writes"
    with pytest.raises(vectron.DimensionMismatch):
        client.search(name, [1.0, 2.0])


def test_invalid_vectors_and_ids_are_refused(client: Client, new_collection) -> None:
    name = new_collection(dimension=2)
    with pytest.raises(vectron.InvalidVector) as e:
        client.upsert(name, [{"id": 1, "vector": [float("nan"), 1.0]}])
    assert e.value.code == "INVALID_VECTOR" and e.value.grpc_status == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(vectron.InvalidVector):
        client.upsert(name, [{"id": 1, "vector": [0.0, 0.0]}])  # all zeros under cosine
    with pytest.raises(vectron.InvalidPointId) as e2:
        client.upsert(name, [{"id": -1, "vector": [1.0, 0.0]}])
    assert e2.value.grpc_status is None, "refused before sending"
    assert client.count(name) == 0


def test_upsert_batches_and_progress(client: Client, new_collection) -> None:
    name = new_collection(dimension=2)

    class Bar:
        def __init__(self) -> None:
            self.updates: List[int] = []

        def update(self, n: int) -> None:
            self.updates.append(n)

    bar = Bar()
    pts = [{"id": i, "vector": [1.0, float(i)]} for i in range(50)]
    r = client.upsert(name, pts, batch_size=7, progress=bar)
    assert (r.upserted, r.batches) == (50, 8)
    assert bar.updates == [7] * 7 + [1]
    # progress=True draws a tqdm bar (an optional dependency, installed for the tests).
    r = client.upsert(name, iter(pts), batch_size=25, progress=True)
    assert (r.upserted, r.batches) == (50, 2)
    assert client.count(name) == 50
    assert client.upsert(name, []).upserted == 0
    with pytest.raises(vectron.InvalidArgument):
        client.upsert(name, pts, batch_size=0)


def test_upsert_without_wait_becomes_visible(client: Client, new_collection) -> None:
    name = new_collection(dimension=2)
    r = client.upsert(name, [{"id": i, "vector": [1.0, float(i)]} for i in range(20)], wait=False)
    assert r.upserted == 20
    deadline = time.monotonic() + 10
    while client.count(name) < 20:
        assert time.monotonic() < deadline, "an accepted batch is applied"
        time.sleep(0.05)


def test_delete_by_ids_and_by_filter(client: Client, new_collection) -> None:
    name = new_collection(dimension=2, shard_count=2)
    client.upsert(
        name,
        [{"id": i, "vector": [1.0, float(i)], "payload": {"parity": "even" if i % 2 == 0 else "odd", "i": i}}
         for i in range(40)] + [{"id": "s", "vector": [1.0, 0.0]}],
    )  # fmt: skip
    assert client.delete(name, ids=[0, 1, 2, "s", 999]) == 4, "missing ids are not counted"
    assert client.count(name) == 37
    even = {"must": [{"key": "parity", "match": {"value": "even"}}]}
    assert client.count(name, even) == 18
    assert client.delete(name, filter=even) == 18
    assert client.count(name, even) == 0 and client.count(name) == 19
    assert client.delete(name, filter={"must": [{"key": "i", "range": {"gte": 30}}]}) == 5
    assert sorted(p.id for p in client.scroll(name)) == [i for i in range(3, 30, 2)]
    with pytest.raises(vectron.InvalidArgument):
        client.delete(name)
    with pytest.raises(vectron.InvalidArgument):
        client.delete(name, ids=[1], filter=even)
    with pytest.raises(vectron.InvalidFilter) as e:
        client.delete(name, filter={"must": [{"key": "i..j", "match": {"value": 1}}]})
    assert e.value.grpc_status == grpc.StatusCode.INVALID_ARGUMENT, "a malformed key is the server's to refuse"


@pytest.mark.parametrize("batch_size", [1, 37, 10_000])
def test_scroll_yields_every_point_exactly_once(client: Client, new_collection, batch_size: int) -> None:
    name = new_collection(dimension=3, shard_count=3)
    n = 150 if batch_size == 1 else 1200
    ids: List[Any] = list(range(n // 2)) + [f"doc-{i}" for i in range(n - n // 2)]
    vectors = np.random.default_rng(3).standard_normal((n, 3)).astype(np.float32) + 5
    client.upsert(name, ids=ids, vectors=vectors, payloads=[{"k": str(i)} for i in ids])
    seen = [(type(p.id).__name__, p.id) for p in client.scroll(name, batch_size=batch_size)]
    assert len(seen) == n and len(set(seen)) == n
    assert set(seen) == {(type(i).__name__, i) for i in ids}
    with_all = list(client.scroll(name, batch_size=500, with_vector=True))
    assert all(p.payload == {"k": str(p.id)} and p.vector is not None and len(p.vector) == 3 for p in with_all)


def test_scroll_pages_follow_the_cursor(client: Client, new_collection) -> None:
    name = new_collection(dimension=2, shard_count=2)
    client.upsert(name, [{"id": i, "vector": [1.0, float(i)]} for i in range(25)])
    seen: List[Any] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = client.scroll_page(name, limit=10, cursor=cursor, with_payload=False)
        assert len(page) <= 10
        seen += [p.id for p in page]
        pages += 1
        if cursor is None:
            break
        assert pages < 10
    assert sorted(seen) == list(range(25)) and pages >= 3
    with pytest.raises(vectron.InvalidArgument):
        client.scroll_page(name, limit=0)
