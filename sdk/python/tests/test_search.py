"""Search, batches, streams, reranking and feedback against a real `vectron dev`,
checked against brute-force NumPy kNN."""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np
import pytest

import vectron
from vectron import Client, SearchQuery

N, DIM, K = 1500, 16, 10


def brute_force(data: np.ndarray, queries: np.ndarray, distance: str, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Ids (row numbers) and scores of the exact k nearest, best first, as the server scores."""
    if distance == "cosine":
        d = data / np.linalg.norm(data, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        scores = q @ d.T
        order = np.argsort(-scores, axis=1)[:, :k]
    elif distance == "dot":
        scores = queries @ data.T
        order = np.argsort(-scores, axis=1)[:, :k]
    else:
        scores = np.sqrt(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1))
        order = np.argsort(scores, axis=1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.fixture(scope="module", params=["cosine", "euclid", "dot"])
def knn_collection(request: Any, client: Client) -> Any:
    distance = request.param
    rng = np.random.default_rng({"cosine": 1, "euclid": 2, "dot": 3}[distance])
    data = rng.standard_normal((N, DIM)).astype(np.float32)
    name = f"knn-{distance}-{rng.integers(1 << 30)}"
    client.create_collection(name, DIM, distance=distance, shard_count=2)
    payloads = [{"row": i, "bucket": i % 5} for i in range(N)]
    client.upsert(name, ids=list(range(N)), vectors=data, payloads=payloads, batch_size=500)
    queries = rng.standard_normal((40, DIM)).astype(np.float32)
    yield name, distance, data, queries
    client.delete_collection(name)


def test_search_agrees_with_brute_force_knn(client: Client, knn_collection: Any) -> None:
    name, distance, data, queries = knn_collection
    want_ids, want_scores = brute_force(data, queries, distance, K)
    hits = 0
    for q, ids, scores in zip(queries, want_ids, want_scores):
        r = client.search(name, q, top_k=K, ef=N)  # ef past the collection size: exact
        assert not r.partial and r.missing_shards == [] and r.query_id
        assert len(r) == K
        got = [h.id for h in r]
        hits += len(set(got) & set(ids.tolist()))
        np.testing.assert_allclose([h.score for h in r], scores, rtol=1e-4, atol=1e-4)
    recall = hits / (K * len(queries))
    assert recall == 1.0, f"{distance}: recall {recall}"


def test_search_options(client: Client, knn_collection: Any) -> None:
    name, distance, data, queries = knn_collection
    q = queries[0]
    r = client.search(name, q, top_k=5, ef=N, with_payload=True, with_vector=True)
    for h in r:
        assert h.payload == {"row": h.id, "bucket": h.id % 5}
        want = data[h.id] / np.linalg.norm(data[h.id]) if distance == "cosine" else data[h.id]
        np.testing.assert_allclose(h.vector, want, rtol=1e-5, atol=1e-6)
        assert h.rerank_score is None and h.explanation == ""
    bare = client.search(name, q, top_k=5, ef=N)
    assert all(h.payload is None and h.vector is None for h in bare)
    assert bare.ids == r.ids

    # score_threshold keeps exactly the hits at least that good.
    full = client.search(name, q, top_k=50, ef=N)
    threshold = full[20].score
    cut = client.search(name, q, top_k=50, ef=N, score_threshold=threshold)
    if distance == "euclid":
        expected = [h.id for h in full if h.score <= threshold]
    else:
        expected = [h.id for h in full if h.score >= threshold]
    assert cut.ids == expected and 0 < len(cut) < 50

    # A filter with an exact search: the brute-force kNN among the matching rows.
    filtered = client.search(name, q, top_k=K, ef=N, filter={"must": [{"key": "bucket", "match": {"value": 3}}]})
    rows = np.arange(N)[np.arange(N) % 5 == 3]
    want, _ = brute_force(data[rows], q[None, :], distance, K)
    assert filtered.ids == rows[want[0]].tolist()

    for c in ("linearizable", "leader", "any"):
        assert client.search(name, q, top_k=3, ef=N, consistency=c).ids == bare.ids[:3]
    assert client.search(name, q, top_k=3, ef=N, timeout=5).ids == bare.ids[:3]
    with pytest.raises(vectron.InvalidArgument):
        client.search(name, q, top_k=3, consistency="eventually")
    with pytest.raises(vectron.InvalidArgument) as e:
        client.search(name, q, top_k=10_001)
    assert e.value.grpc_status is not None, "top_k's upper bound is the server's"


def test_search_batch_and_stream_answer_like_search(client: Client, knn_collection: Any) -> None:
    name, distance, data, queries = knn_collection
    single = [client.search(name, q, top_k=K, ef=N) for q in queries]
    batch = client.search_batch(name, queries, top_k=K, ef=N)
    stream = list(client.search_stream(name, queries, top_k=K, ef=N))
    assert [r.ids for r in batch] == [r.ids for r in single]
    assert [r.ids for r in stream] == [r.ids for r in single]
    for a, b in zip(batch, single):
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-6)

    # Items may be dicts or SearchQuery objects overriding the defaults; > 256 searches
    # are split into several batches.
    mixed: List[Any] = [
        {"vector": queries[0], "top_k": 3, "with_payload": True},
        SearchQuery(vector=queries[1], top_k=2, ef=N),
        queries[2],
    ]
    r = client.search_batch(name, mixed, top_k=4, ef=N)
    assert [len(x) for x in r] == [3, 2, 4]
    assert r[0].hits[0].payload is not None and r[2].hits[0].payload is None
    many = client.search_batch(name, np.repeat(queries[:1], 300, axis=0), top_k=2, ef=N)
    assert len(many) == 300 and all(x.ids == single[0].ids[:2] for x in many)

    # A generator of queries is read lazily by the stream.
    def gen() -> Any:
        for q in queries[:5]:
            yield {"vector": q, "top_k": 2}

    assert [x.ids for x in client.search_stream(name, gen(), ef=N)] == [s.ids[:2] for s in single[:5]]


def test_stream_errors_end_the_stream_after_the_answers_before(client: Client, knn_collection: Any) -> None:
    name, _, _, queries = knn_collection
    got: List[Any] = []
    with pytest.raises(vectron.DimensionMismatch):
        for r in client.search_stream(name, [queries[0], queries[1], [1.0, 2.0], queries[2]], top_k=1):
            got.append(r)
    assert len(got) == 2
    # A query the client cannot even encode ends the stream the same way.
    got = []
    with pytest.raises(vectron.InvalidFilter):
        for r in client.search_stream(name, [queries[0], {"vector": queries[1], "filter": {"bad": []}}], top_k=1):
            got.append(r)
    assert len(got) == 1
    with pytest.raises(vectron.DimensionMismatch):
        client.search_batch(name, [queries[0], [1.0]], top_k=1)


def test_rerank_and_feedback(client: Client, new_collection) -> None:
    name = new_collection(dimension=3)
    docs = [
        (1, [1.0, 0.0, 0.0], "a distributed vector database"),
        (2, [0.9, 0.1, 0.0], "cooking with vectors"),
        (3, [0.8, 0.2, 0.1], "vector database internals: a vector database"),
        (4, [0.0, 1.0, 0.0], "unrelated text"),
    ]
    client.upsert(name, [{"id": i, "vector": v, "payload": {"title": t}} for i, v, t in docs])
    q = [1.0, 0.05, 0.0]
    plain = client.search(name, q, top_k=3)
    assert not plain.reranked and plain.ids[0] == 1
    r = client.search(
        name, q, top_k=3, with_payload=True,
        rerank={"strategy": "rule", "query_text": "vector database", "params": {"text_fields": ["title"]}},
    )  # fmt: skip
    assert r.reranked and r.rerank_skipped == ""
    assert all(h.rerank_score is not None for h in r)
    assert r.hits[0].explanation and "bm25" in r.hits[0].explanation
    assert [h.rerank_score for h in r] == sorted((h.rerank_score for h in r), reverse=True)  # type: ignore[type-var]
    assert set(r.ids) == set(plain.ids)
    with pytest.raises(vectron.InvalidArgument):
        client.search(name, q, rerank={"strategy": "rule", "params": {"no_such_param": 1}})

    client.submit_feedback(name, r.query_id, r.ids[0], 1.0, clicked=True, position=0, query_text="vector database")
    client.submit_feedback(name, r.query_id, r.ids[1], -0.5, position=1)
    client.submit_feedback(name, r.query_id, r.ids[1], -1.0, position=1, comment="judged again")  # replaces
    stats = client.feedback_stats(name)
    assert (stats.count, stats.queries, stats.points) == (2, 1, 2)
    assert (stats.positive, stats.negative, stats.clicked) == (1, 1, 1)
    assert stats.mean_relevance == pytest.approx(0.0)
    assert stats.top_points[0].point_id == r.ids[0] and stats.top_points[0].clicks == 1
    assert stats.model is not None and stats.model.version
    with pytest.raises(vectron.InvalidArgument):
        client.submit_feedback(name, r.query_id, 1, relevance=2.0)
