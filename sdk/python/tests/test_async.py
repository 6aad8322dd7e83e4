"""The asyncio client: the same core checks as the sync client's, against the same server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, List

import grpc
import numpy as np
import pytest

import vectron
from conftest import Server
from naive_filter import filter_matches
from test_search import brute_force
from vectron import AsyncClient


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_collections_points_and_errors(server: Server) -> None:
    async def main() -> None:
        name = f"async-{uuid.uuid4().hex[:10]}"
        async with AsyncClient(server.grpc, api_key=server.admin_key, timeout=60) as c:
            config = await c.create_collection(name, 8, distance="euclid", shard_count=2, payload_indexes={"g": "integer"})
            assert (config.dimension, config.shard_count, config.payload_indexes[0].kind) == (8, 2, "integer")
            try:
                assert name in [x.name for x in await c.list_collections()]
                assert await c.collection_exists(name)
                assert len((await c.collection_status(name)).shards) == 2
                with pytest.raises(vectron.CollectionAlreadyExists):
                    await c.create_collection(name, 8)

                rng = np.random.default_rng(11)
                vectors = rng.standard_normal((500, 8)).astype(np.float32)
                ids: List[Any] = list(range(250)) + [f"s{i}" for i in range(250)]
                payloads = [{"g": i % 7, "tag": "x" if i % 2 else None} for i in range(500)]
                r = await c.upsert(name, ids=ids, vectors=vectors, payloads=payloads, batch_size=128)
                assert (r.upserted, r.batches) == (500, 4)
                assert (await c.get_collection(name)).points_count == 500

                got = await c.get(name, ids, with_vector=True)
                assert [p.id for p in got] == ids
                assert np.array_equal(np.array([p.vector for p in got], dtype=np.float32), vectors)
                assert [p.payload for p in got] == payloads

                seen = [(type(p.id), p.id) async for p in c.scroll(name, batch_size=33)]
                assert len(seen) == 500 and set(seen) == {(type(i), i) for i in ids}
                page, cursor = await c.scroll_page(name, limit=100)
                assert len(page) == 100 and cursor is not None

                f = {"must": [{"key": "g", "match": {"value": 3}}], "must_not": [{"is_null": {"key": "tag"}}]}
                want = sum(filter_matches(f, i, p) for i, p in zip(ids, payloads))
                assert await c.count(name, f) == want > 0
                assert await c.delete(name, filter=f) == want
                assert await c.delete(name, ids=["s0", "s1", 0]) == 3
                assert await c.count(name) == 500 - want - 3

                with pytest.raises(vectron.DimensionMismatch) as e:
                    await c.upsert(name, [{"id": 1, "vector": [1.0, 2.0]}])
                assert e.value.code == "DIMENSION_MISMATCH" and e.value.grpc_status == grpc.StatusCode.INVALID_ARGUMENT
                with pytest.raises(vectron.CollectionNotFound):
                    await c.search("no-such-collection", [0.0] * 8)
                reader_key = server.create_key("read", [name])
                async with AsyncClient(server.grpc, api_key=reader_key) as reader:
                    assert await reader.count(name) == 500 - want - 3
                    with pytest.raises(vectron.PermissionDenied):
                        await reader.upsert(name, [{"id": 1, "vector": [0.0] * 8}])
            finally:
                await c.delete_collection(name)
            with pytest.raises(vectron.NotFound):
                await c.get_collection(name)

    run(main())


def test_async_search_agrees_with_brute_force_and_the_sync_client(server: Server, client: vectron.Client) -> None:
    name = f"async-knn-{uuid.uuid4().hex[:10]}"
    rng = np.random.default_rng(12)
    data = rng.standard_normal((1000, 12)).astype(np.float32)
    queries = rng.standard_normal((30, 12)).astype(np.float32)
    want, _ = brute_force(data, queries, "cosine", 10)

    async def main() -> Any:
        async with AsyncClient(server.grpc, api_key=server.admin_key) as c:
            await c.create_collection(name, 12, shard_count=2)
            await c.upsert(name, ids=list(range(1000)), vectors=data)
            one = [await c.search(name, q, top_k=10, ef=1000) for q in queries]
            together = await asyncio.gather(*(c.search(name, q, top_k=10, ef=1000) for q in queries))
            batch = await c.search_batch(name, queries, top_k=10, ef=1000)
            stream = [r async for r in c.search_stream(name, queries, top_k=10, ef=1000)]

            async def agen() -> Any:
                for q in queries[:3]:
                    await asyncio.sleep(0)
                    yield q

            from_async_iter = [r.ids async for r in c.search_stream(name, agen(), top_k=10, ef=1000)]
            bad: List[Any] = []
            with pytest.raises(vectron.DimensionMismatch):
                async for r in c.search_stream(name, [queries[0], [1.0]], top_k=1):
                    bad.append(r)
            assert len(bad) == 1
            r = await c.search(name, queries[0], top_k=3, with_payload=True,
                               rerank={"strategy": "mmr", "params": {"lambda": 1.0}})  # fmt: skip
            assert r.reranked or r.rerank_skipped
            await c.submit_feedback(name, r.query_id, r.ids[0], 0.5)
            stats = await c.feedback_stats(name)
            return one, together, batch, stream, from_async_iter, stats

    try:
        one, together, batch, stream, from_async_iter, stats = run(main())
    finally:
        client.delete_collection(name)
    ids = [r.ids for r in one]
    assert ids == want.tolist(), "recall 1.0 with an exact search"
    assert [r.ids for r in together] == ids
    assert [r.ids for r in batch] == ids
    assert [r.ids for r in stream] == ids
    assert from_async_iter == ids[:3]
    assert stats.count == 1 and stats.positive == 1
