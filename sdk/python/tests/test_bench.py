"""Throughput through the SDK: a 100k-point 128-d upsert (points/s) and search QPS
(sequential unary calls, search_batch, search_stream), with recall against brute force.

The figures are printed in the run's summary ("vectron python-sdk figures"). They
measure one Python client and a debug `vectron dev` sharing this machine's cores: they
are for comparing runs on one machine, not a benchmark of the server (see
`vectron-bench cluster` for that).

Environment: VECTRON_PY_BENCH_N (points, default 100000).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from typing import List

import numpy as np
import pytest

from conftest import Server
from test_search import brute_force
from vectron import Client

DIM = 128
# 100k points take ~130 MB of data dir (measured: ~1.2 KB a point, RocksDB + Raft log);
# leave room beside it for whatever else shares the disk.
MIN_FREE_BYTES = 512 << 20


def clustered(n: int, queries: int, dim: int, clusters: int, seed: int) -> "tuple[np.ndarray, np.ndarray]":
    """The data `vectron-bench` generates (bench/src/dataset.rs): Gaussian cluster centres,
    each point a centre plus N(0, 0.35²) noise; queries drawn the same way. (i.i.d.
    Gaussian vectors in 128 dimensions are almost equidistant, a worst case no graph
    index answers well at a practical ef.)"""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        c = centres[rng.integers(0, clusters, count)]
        return (c + 0.35 * rng.standard_normal((count, dim))).astype(np.float32)

    return draw(n), draw(queries)


@pytest.mark.bench
def test_ingest_and_search_throughput(server: Server, client: Client, report: List[str]) -> None:
    n = int(os.environ.get("VECTRON_PY_BENCH_N", "100000"))
    free = shutil.disk_usage(server.data_dir).free
    if free < MIN_FREE_BYTES:
        pytest.skip(f"only {free >> 20} MiB free under {server.data_dir}; the {n}-point run wants 512 MiB "
                    "(set VECTRON_PY_DATA_ROOT to a roomier place, e.g. /dev/shm)")
    data, queries = clustered(n, 1000, DIM, clusters=100, seed=2026)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_collection(name, DIM, distance="cosine")
    try:
        r = client.upsert(name, ids=np.arange(n, dtype=np.uint64), vectors=data, batch_size=1000)
        assert (r.upserted, r.batches) == (n, -(-n // 1000))
        assert client.count(name) == n
        report.append(
            f"ingest: {n} points x {DIM}d in {r.seconds:.1f} s = {r.points_per_second:,.0f} points/s "
            f"(one client, batches of 1000, wait=true)"
        )

        ef = 64
        sequential = 300
        t = time.perf_counter()
        single = [client.search(name, q, top_k=10, ef=ef) for q in queries[:sequential]]
        qps_single = sequential / (time.perf_counter() - t)
        t = time.perf_counter()
        batch = client.search_batch(name, queries, top_k=10, ef=ef)
        qps_batch = len(queries) / (time.perf_counter() - t)
        t = time.perf_counter()
        stream = list(client.search_stream(name, queries, top_k=10, ef=ef))
        qps_stream = len(queries) / (time.perf_counter() - t)
        assert len(batch) == len(stream) == len(queries) and all(len(x) == 10 for x in batch)
        # Same index, same searches: the same answers whichever way they were sent.
        same = np.mean([a.ids == b.ids for a, b in zip(batch, stream)])
        assert same >= 0.99
        assert np.mean([a.ids == b.ids for a, b in zip(single, batch)]) >= 0.99
        report.append(
            f"search QPS (top 10, ef {ef}): sequential {qps_single:,.0f}, "
            f"search_batch {qps_batch:,.0f}, search_stream {qps_stream:,.0f}"
        )

        want, _ = brute_force(data, queries[:100], "cosine", 10)
        recalls = {}
        for e in (64, 256):
            got = client.search_batch(name, queries[:100], top_k=10, ef=e)
            recalls[e] = np.mean([len(set(g.ids) & set(w.tolist())) / 10 for g, w in zip(got, want)])
        report.append(f"recall@10 vs brute force (100 queries): ef 64 {recalls[64]:.3f}, ef 256 {recalls[256]:.3f}")
        assert recalls[256] >= 0.95, recalls
        assert recalls[256] >= recalls[64] - 0.01
    finally:
        client.delete_collection(name)
