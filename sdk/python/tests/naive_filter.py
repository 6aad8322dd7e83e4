"""A naive evaluator of Vectron's filter language over one point, written from the
reference semantics (model/src/filter.rs), and random payloads and filters to compare
the server against it."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Mapping, Optional


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _segments(key: str) -> List[str]:
    return [s[:-2] if s.endswith("[]") else s for s in key.split(".")]


def _flatten(v: Any, out: List[Any]) -> None:
    if isinstance(v, list):
        for x in v:
            _flatten(x, out)
    else:
        out.append(v)


def _field(v: Any, name: str, out: List[Any]) -> None:
    if isinstance(v, dict):
        if name in v:
            out.append(v[name])
    elif isinstance(v, list):
        for x in v:
            _field(x, name, out)


def values_at(payload: Optional[Mapping[str, Any]], key: str) -> List[Any]:
    if payload is None:
        return []
    first, *rest = _segments(key)
    current = [payload[first]] if first in payload else []
    for seg in rest:
        nxt: List[Any] = []
        for v in current:
            _field(v, seg, nxt)
        current = nxt
    out: List[Any] = []
    for v in current:
        _flatten(v, out)
    return out


def _match_value(m: Any) -> Any:
    # 3.0 in a match is the integer 3.
    if isinstance(m, float) and m == int(m):
        return int(m)
    return m


def value_equals(v: Any, m: Any) -> bool:
    m = _match_value(m)
    if isinstance(m, bool):
        return isinstance(v, bool) and v == m
    if isinstance(m, str):
        return isinstance(v, str) and v == m
    if _is_int(m):
        # Integers equal integral payload numbers only (a float payload never does).
        return _is_int(v) and v == m
    return False


def _in_range(x: float, r: Mapping[str, float]) -> bool:
    return (
        ("gt" not in r or x > r["gt"])
        and ("gte" not in r or x >= r["gte"])
        and ("lt" not in r or x < r["lt"])
        and ("lte" not in r or x <= r["lte"])
    )


def condition_matches(c: Mapping[str, Any], id: Any, payload: Optional[Mapping[str, Any]]) -> bool:
    if "has_id" in c:
        return any(type(x) is type(id) and x == id for x in c["has_id"])
    if "exists" in c:
        return any(v is not None for v in values_at(payload, c["exists"]["key"]))
    if "is_null" in c:
        return any(v is None for v in values_at(payload, c["is_null"]["key"]))
    if "key" in c:
        values = values_at(payload, c["key"])
        if "match" in c:
            m = c["match"]
            if "value" in m:
                return any(value_equals(v, m["value"]) for v in values)
            return any(value_equals(v, x) for v in values for x in m["any"])
        return any(_is_num(v) and _in_range(float(v), c["range"]) for v in values)
    return filter_matches(c, id, payload)


def filter_matches(f: Mapping[str, Any], id: Any, payload: Optional[Mapping[str, Any]]) -> bool:
    must, should, must_not = f.get("must", []), f.get("should", []), f.get("must_not", [])
    return (
        all(condition_matches(c, id, payload) for c in must)
        and (not should or any(condition_matches(c, id, payload) for c in should))
        and not any(condition_matches(c, id, payload) for c in must_not)
    )


CITIES = ["London", "Paris", "Rome", "Oslo", "Lima"]
TAGS = ["new", "sale", "old", "eco", "hot"]
ZIPS = ["N1", "E2", "W3", "S4"]


def random_payload(rng: random.Random) -> Dict[str, Any]:
    p: Dict[str, Any] = {}
    r = rng.random()
    if r < 0.7:
        p["city"] = rng.choice(CITIES)
    elif r < 0.8:
        p["city"] = None
    elif r < 0.9:
        p["city"] = rng.sample(CITIES, rng.randint(0, 2))
    kind = rng.random()
    if kind < 0.6:
        p["n"] = rng.randint(-3, 10)
    elif kind < 0.7:
        p["n"] = float(rng.randint(0, 5))  # a whole float: not an integer to match
    elif kind < 0.8:
        p["n"] = rng.choice(["3", "x"])
    elif kind < 0.9:
        p["n"] = [rng.randint(0, 10) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.85:
        p["price"] = round(rng.uniform(0, 200), 2) if rng.random() < 0.8 else rng.randint(0, 200)
    if rng.random() < 0.7:
        p["ok"] = rng.random() < 0.5
    if rng.random() < 0.6:
        p["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    if rng.random() < 0.5:
        p["shop"] = {"addr": [{"zip": rng.choice(ZIPS)} for _ in range(rng.randint(0, 2))]}
    r = rng.random()
    if r < 0.3:
        p["owner"] = None
    elif r < 0.6:
        p["owner"] = rng.choice(["ann", "bob"])
    return p


def random_condition(rng: random.Random, ids: List[Any], depth: int) -> Dict[str, Any]:
    r = rng.random()
    if r < 0.12 and depth < 2:
        return random_filter(rng, ids, depth + 1)
    if r < 0.22:
        return {"key": "city", "match": {"value": rng.choice(CITIES)}}
    if r < 0.30:
        return {"key": "city", "match": {"any": rng.sample(CITIES, 2)}}
    if r < 0.40:
        v: Any = rng.randint(0, 6)
        if rng.random() < 0.3:
            v = float(v)  # written 3.0: still the integer 3
        return {"key": "n", "match": {"value": v}}
    if r < 0.46:
        return {"key": "n", "range": {"gte": rng.randint(-2, 4), "lt": rng.randint(4, 9)}}
    if r < 0.56:
        lo = rng.uniform(0, 150)
        return {"key": "price", "range": {"gt": lo, "lte": lo + rng.uniform(5, 80)}}
    if r < 0.62:
        return {"key": "ok", "match": {"value": rng.random() < 0.5}}
    if r < 0.70:
        return {"key": "tags", "match": {"any": rng.sample(TAGS, rng.randint(1, 2))}}
    if r < 0.76:
        return {"key": rng.choice(["shop.addr.zip", "shop.addr[].zip"]), "match": {"value": rng.choice(ZIPS)}}
    if r < 0.84:
        return {"exists": {"key": rng.choice(["city", "owner", "tags", "shop.addr.zip", "missing"])}}
    if r < 0.92:
        return {"is_null": {"key": rng.choice(["city", "owner"])}}
    return {"has_id": rng.sample(ids, min(len(ids), rng.randint(1, 8)))}


def random_filter(rng: random.Random, ids: List[Any], depth: int = 0) -> Dict[str, Any]:
    f: Dict[str, Any] = {}
    for clause, p in (("must", 0.7), ("should", 0.4), ("must_not", 0.3)):
        if rng.random() < p:
            f[clause] = [random_condition(rng, ids, depth) for _ in range(rng.randint(1, 3))]
    return f
