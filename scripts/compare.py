#!/usr/bin/env python3
"""Reads JSON rows from vectron-bench and hnswlib_bench.py (stdin or files) and prints
QPS at equal recall (interpolated along each library's recall/QPS curve) and build-time
ratios, vectron over hnswlib."""

import fileinput
import json


def qps_at(rows, target, key):
    pts = sorted((r["recall"], r[key]) for r in rows)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    best = [q for r, q in pts if r >= target]
    return max(best) if best else None


def main():
    rows = [json.loads(line) for line in fileinput.input() if line.strip().startswith("{")]
    engine = [r for r in rows if r.get("bench") == "engine"]
    ours = [r for r in engine if r["backend"] == "vectron-hnsw"]
    ref = [r for r in engine if r["backend"] == "hnswlib"]
    if not ours or not ref:
        print("need rows from both vectron-hnsw and hnswlib")
        return
    print(f"n={ours[0]['n']} dim={ours[0]['dim']} M={ours[0]['m']} ef_construction={ours[0]['ef_construction']}")
    print(f"{'target recall':>14} {'vectron qps_1t':>15} {'hnswlib qps_1t':>15} {'ratio':>7} {'ratio mt':>9}")
    for target in (0.90, 0.95, 0.99):
        a, b = qps_at(ours, target, "qps_1t"), qps_at(ref, target, "qps_1t")
        am, bm = qps_at(ours, target, "qps_mt"), qps_at(ref, target, "qps_mt")
        fmt = lambda x: f"{x:15.0f}" if x else f"{'n/a':>15}"
        ratio = f"{a / b:7.2f}" if a and b else f"{'n/a':>7}"
        ratio_mt = f"{am / bm:9.2f}" if am and bm else f"{'n/a':>9}"
        print(f"{target:>14} {fmt(a)} {fmt(b)} {ratio} {ratio_mt}")
    ob, rb = ours[0]["build_s"], ref[0]["build_s"]
    print(f"build: vectron {ob:.2f}s, hnswlib {rb:.2f}s, ratio {ob / rb:.2f}")
    print(f"memory: vectron {ours[0]['rss_bytes'] / 2**20:.0f} MiB, hnswlib {ref[0]['rss_bytes'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
