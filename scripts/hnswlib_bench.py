#!/usr/bin/env python3
"""Runs the hnswlib Python package on a dataset saved by `vectron-bench engine
--save-dataset DIR` and prints the same JSON rows as vectron-bench (one per ef), so the
two can be compared on the same data in one run."""

import argparse
import json
import sys
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        return np.zeros((0, 0), dtype=dtype)
    dim = raw[0]
    rows = raw.reshape(-1, dim + 1)
    return rows[:, 1:].copy().view(dtype)


def rss_bytes():
    """Resident set size now (not the peak, which file loading inflates)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, help="folder with base.fvecs, query.fvecs, groundtruth.ivecs")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="16,32,64,128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--space", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per measurement; the best is kept")
    ap.add_argument("--self-check", action="store_true", help="count base points that find themselves first")
    args = ap.parse_args()

    base = read_vecs(f"{args.dataset}/base.fvecs", np.float32)
    queries = read_vecs(f"{args.dataset}/query.fvecs", np.float32)
    truth = read_vecs(f"{args.dataset}/groundtruth.ivecs", np.int32)[:, : args.k]
    n, dim = base.shape

    rss_before = rss_bytes()
    index = hnswlib.Index(space=args.space, dim=dim)
    index.init_index(max_elements=n, M=args.m, ef_construction=args.ef_construction, random_seed=100)
    index.set_num_threads(args.threads)
    t = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=args.threads)
    build_s = time.perf_counter() - t
    rss = rss_bytes() - rss_before

    for ef in [int(x) for x in args.ef.split(",")]:
        index.set_ef(max(ef, args.k))
        for q in queries[:20]:
            index.knn_query(q, k=args.k, num_threads=1)
        qps_1t, lat, found = 0.0, [], []
        for _ in range(max(1, args.repeat)):
            pass_lat, pass_found = [], []
            t = time.perf_counter()
            for q in queries:
                s = time.perf_counter()
                labels, _ = index.knn_query(q, k=args.k, num_threads=1)
                pass_lat.append(time.perf_counter() - s)
                pass_found.append(labels[0])
            q1 = len(queries) / (time.perf_counter() - t)
            if q1 > qps_1t:
                qps_1t, lat, found = q1, sorted(pass_lat), pass_found
        rounds = max(1, min(20, int(np.ceil(0.5 * qps_1t / len(queries)))))
        qps_mt = 0.0
        for _ in range(max(1, args.repeat)):
            t = time.perf_counter()
            for _ in range(rounds):
                index.knn_query(queries, k=args.k, num_threads=args.threads)
            qps_mt = max(qps_mt, rounds * len(queries) / (time.perf_counter() - t))
        hits = sum(len(set(f.tolist()) & set(tr.tolist())) for f, tr in zip(found, truth))
        row = {
            "bench": "engine", "backend": "hnswlib", "n": n, "dim": dim, "m": args.m,
            "ef_construction": args.ef_construction, "threads": args.threads, "k": args.k, "ef": ef,
            "recall": hits / truth.size, "qps_1t": qps_1t, "qps_mt": qps_mt,
            "p50_us": lat[int(round((len(lat) - 1) * 0.5))] * 1e6,
            "p99_us": lat[int(round((len(lat) - 1) * 0.99))] * 1e6,
            "build_s": build_s, "rss_bytes": rss,
        }
        print(json.dumps(row))
        sys.stdout.flush()

    if args.self_check:
        for ef in (64, args.ef_construction):
            index.set_ef(ef)
            labels, _ = index.knn_query(base, k=1, num_threads=args.threads)
            found = int((labels[:, 0] == np.arange(n)).sum())
            print(f"hnswlib self-check at ef {ef}: {found} of {n} points find themselves first ({found / n:.5f})", file=sys.stderr)
            print(json.dumps({"bench": "self_check", "backend": "hnswlib", "ef": ef, "self_found": found, "n": n, "recall": found / n}))


if __name__ == "__main__":
    main()
