"""Conversions between the client's Python values and the generated protobuf messages.

One module both clients use: ids, payloads (``vectron.v1.Struct``, integers kept as
``integer_value``), filters (the HTTP API's JSON shape to ``vectron.v1.Filter``, as the
server's ``model/src/convert.rs`` reads them), collection configs and every response.
Nothing here does I/O.
"""

from __future__ import annotations

import math
import numbers
from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ._proto.vectron.v1 import auth_pb2 as apb
from ._proto.vectron.v1 import common_pb2 as cpb
from ._proto.vectron.v1 import vectron_pb2 as vpb
from .errors import client_error
from .types import (
    CollectionConfig,
    CollectionInfo,
    CollectionStatus,
    FeedbackModel,
    FeedbackStats,
    HnswConfig,
    PayloadIndex,
    PointFeedback,
    PointId,
    Record,
    ReplicaStatus,
    Rerank,
    ScoredPoint,
    SearchQuery,
    SearchResult,
    ShardStatus,
    TokenPair,
)

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
MAX_STRING_ID_CHARS = 256
# Whole floats below this are exact; the server reads `3.0` in a match as the integer 3.
MAX_EXACT_WHOLE_F64 = 2.0**53
# Server caps per request (model/src/types.rs).
MAX_IDS_PER_REQUEST = 10_000
MAX_POINTS_PER_UPSERT = 10_000
MAX_SEARCH_BATCH = 256
MAX_SCROLL_LIMIT = 10_000

DISTANCES: Dict[str, "vpb.Distance"] = {"cosine": vpb.COSINE, "euclid": vpb.EUCLID, "euclidean": vpb.EUCLID, "dot": vpb.DOT}
DISTANCE_NAMES = {vpb.COSINE: "cosine", vpb.EUCLID: "euclid", vpb.DOT: "dot"}
INDEX_KINDS = {"keyword": vpb.KEYWORD, "integer": vpb.INTEGER, "float": vpb.FLOAT, "bool": vpb.BOOL}
INDEX_KIND_NAMES = {v: k for k, v in INDEX_KINDS.items()}
CONSISTENCIES: Dict[str, "cpb.Consistency"] = {"linearizable": cpb.LINEARIZABLE, "leader": cpb.LEADER, "any": cpb.ANY}
REPLICA_STATES = {vpb.ACTIVE: "active", vpb.CATCHING_UP: "catching_up", vpb.UNREACHABLE: "unreachable"}


def _is_bool(v: Any) -> bool:
    # numpy.bool_ is neither bool nor numbers.Integral.
    return isinstance(v, bool) or type(v).__name__ in ("bool_", "bool")


# ---- ids ----


def point_id_to_pb(id: Any) -> cpb.PointId:
    """A point id as the wire's oneof: non-negative ints as ``num``, strings as ``str``."""
    if isinstance(id, str):
        n = len(id)
        if n == 0 or n > MAX_STRING_ID_CHARS:
            raise client_error("INVALID_POINT_ID", f"a string id has 1-{MAX_STRING_ID_CHARS} characters, got {n}")
        return cpb.PointId(str=id)
    if _is_bool(id) or not isinstance(id, numbers.Integral):
        raise client_error("INVALID_POINT_ID", f"a point id is an int or a str, got {type(id).__name__} {id!r}")
    i = int(id)
    if not 0 <= i <= U64_MAX:
        raise client_error("INVALID_POINT_ID", f"an integer id is in 0..2**64-1, got {i}")
    return cpb.PointId(num=i)


def point_id_from_pb(id: cpb.PointId) -> PointId:
    kind = id.WhichOneof("kind")
    if kind == "num":
        return id.num
    if kind == "str":
        return id.str
    raise client_error("INVALID_POINT_ID", "the server sent a point without an id")


# ---- payloads ----


def value_to_pb(v: Any, path: str = "") -> cpb.Value:
    """A JSON-like Python value as ``vectron.v1.Value``; ints stay ``integer_value``."""
    if v is None:
        return cpb.Value(null_value=cpb.NULL_VALUE)
    if _is_bool(v):
        return cpb.Value(bool_value=bool(v))
    if isinstance(v, str):
        return cpb.Value(string_value=v)
    if isinstance(v, numbers.Integral):
        i = int(v)
        if not I64_MIN <= i <= I64_MAX:
            raise client_error(
                "INVALID_PAYLOAD",
                f"payload integer {i} at {path or 'the root'} does not fit the wire's 64-bit signed integers",
            )
        return cpb.Value(integer_value=i)
    if isinstance(v, numbers.Real):
        return cpb.Value(double_value=float(v))
    if isinstance(v, Mapping):
        return cpb.Value(struct_value=struct_to_pb(v, path))
    if hasattr(v, "tolist") and not isinstance(v, (bytes, bytearray)):  # numpy arrays and scalars
        return value_to_pb(v.tolist(), path)
    if isinstance(v, (list, tuple)):
        return cpb.Value(
            list_value=cpb.ListValue(values=[value_to_pb(x, f"{path}[{i}]") for i, x in enumerate(v)])
        )
    raise client_error("INVALID_PAYLOAD", f"payload value at {path or 'the root'} is a {type(v).__name__}, not JSON")


def struct_to_pb(m: Mapping[str, Any], path: str = "") -> cpb.Struct:
    s = cpb.Struct()
    for k, v in m.items():
        if not isinstance(k, str):
            raise client_error("INVALID_PAYLOAD", f"payload keys are strings, got {k!r} at {path or 'the root'}")
        s.fields[k].CopyFrom(value_to_pb(v, f"{path}.{k}" if path else k))
    return s


def value_from_pb(v: cpb.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "struct_value":
        return struct_from_pb(v.struct_value)
    if kind == "list_value":
        return [value_from_pb(x) for x in v.list_value.values]
    return getattr(v, kind)


def struct_from_pb(s: cpb.Struct) -> Dict[str, Any]:
    return {k: value_from_pb(v) for k, v in s.fields.items()}


def payload_to_pb(p: Any) -> Optional[cpb.Struct]:
    if p is None:
        return None
    if not isinstance(p, Mapping):
        raise client_error("INVALID_PAYLOAD", f"a payload is a dict (a JSON object), got {type(p).__name__}")
    return struct_to_pb(p)


# ---- vectors ----


def vector_list(v: Any) -> List[float]:
    """A vector as a list of floats (NumPy arrays of any float dtype, lists, tuples)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
        raise client_error("INVALID_VECTOR", f"a vector is a sequence of floats, got {type(v).__name__}")
    out = list(v)
    if out and isinstance(out[0], list):
        raise client_error("INVALID_VECTOR", "a vector is one-dimensional")
    return out


# ---- filters ----

_CLAUSES = ("must", "should", "must_not")


def _bad_filter(reason: str) -> Exception:
    return client_error("INVALID_FILTER", reason)


def match_value_to_pb(v: Any) -> cpb.Value:
    """What ``match`` compares with: a keyword, an integer or a bool (``3.0`` is 3)."""
    if _is_bool(v):
        return cpb.Value(bool_value=bool(v))
    if isinstance(v, str):
        return cpb.Value(string_value=v)
    if isinstance(v, numbers.Integral):
        i = int(v)
        if not I64_MIN <= i <= I64_MAX:
            raise _bad_filter("match integers are 64-bit signed")
        return cpb.Value(integer_value=i)
    if isinstance(v, numbers.Real):
        x = float(v)
        if math.isfinite(x) and x == int(x) and abs(x) < MAX_EXACT_WHOLE_F64:
            return cpb.Value(integer_value=int(x))
        raise _bad_filter("match compares keywords, integers and bools; use range for other numbers")
    raise _bad_filter(f"match compares keywords, integers and bools, got {type(v).__name__}")


def _key(c: Mapping[str, Any], what: str) -> str:
    key = c.get("key")
    if not isinstance(key, str):
        raise _bad_filter(f"{what} needs a string \"key\"")
    return key


def _keyref(c: Mapping[str, Any], op: str) -> str:
    if len(c) != 1:
        raise _bad_filter(f"a {op!r} condition has no other fields")
    ref = c[op]
    if not isinstance(ref, Mapping) or set(ref) != {"key"}:
        raise _bad_filter(f"{op!r} takes an object {{\"key\": …}}")
    return _key(ref, op)


def _range_to_pb(r: Any, key: str) -> cpb.Range:
    if not isinstance(r, Mapping):
        raise _bad_filter("\"range\" takes a JSON object")
    unknown = set(r) - {"gt", "gte", "lt", "lte"}
    if unknown:
        raise _bad_filter(f"range on {key!r} has unknown bounds {sorted(unknown)}")
    if not r:
        raise _bad_filter(f"range on {key!r} has no bound")
    bounds: Dict[str, float] = {}
    for name, b in r.items():
        if _is_bool(b) or not isinstance(b, numbers.Real):
            raise _bad_filter(f"range bound {name} on {key!r} is a number, got {b!r}")
        bounds[name] = float(b)
    return cpb.Range(**bounds)


def condition_to_pb(c: Any) -> cpb.Condition:
    if not isinstance(c, Mapping):
        raise _bad_filter("each condition is a JSON object")
    if "has_id" in c:
        if len(c) != 1:
            raise _bad_filter("a \"has_id\" condition has no other fields")
        ids = c["has_id"]
        if isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Iterable):
            raise _bad_filter("\"has_id\" takes a list of ids")
        try:
            return cpb.Condition(has_id=cpb.HasIdCondition(ids=[point_id_to_pb(i) for i in ids]))
        except Exception as e:
            raise _bad_filter(f"has_id: {e}") from None
    if "exists" in c:
        return cpb.Condition(field=cpb.FieldCondition(key=_keyref(c, "exists"), exists=True))
    if "is_null" in c:
        return cpb.Condition(field=cpb.FieldCondition(key=_keyref(c, "is_null"), is_null=True))
    if "key" in c:
        key = _key(c, "a field condition")
        unknown = set(c) - {"key", "match", "range"}
        if unknown:
            raise _bad_filter(f"condition on {key!r} has unknown fields {sorted(unknown)}")
        if ("match" in c) == ("range" in c):
            raise _bad_filter(f"condition on {key!r} needs exactly one of match, range")
        if "range" in c:
            return cpb.Condition(field=cpb.FieldCondition(key=key, range=_range_to_pb(c["range"], key)))
        m = c["match"]
        if not isinstance(m, Mapping) or len(m) != 1 or not ("value" in m or "any" in m):
            raise _bad_filter("match takes exactly one of value, any")
        if "value" in m:
            return cpb.Condition(field=cpb.FieldCondition(key=key, match=match_value_to_pb(m["value"])))
        any_ = m["any"]
        if isinstance(any_, (str, bytes, Mapping)) or not isinstance(any_, Iterable):
            raise _bad_filter("match.any takes a list")
        values = cpb.ListValue(values=[match_value_to_pb(v) for v in any_])
        return cpb.Condition(field=cpb.FieldCondition(key=key, match_any=values))
    return cpb.Condition(filter=filter_to_pb(c))


def filter_to_pb(f: Any) -> cpb.Filter:
    """A filter in the HTTP API's JSON shape (``{"must": [...], "should": [...],
    "must_not": [...]}``) as ``vectron.v1.Filter``. A ``vectron.v1.Filter`` passes as is.

    Conditions: ``{"key", "match": {"value"}}``, ``{"key", "match": {"any": [...]}}``,
    ``{"key", "range": {"gt", "gte", "lt", "lte"}}``, ``{"exists": {"key"}}``,
    ``{"is_null": {"key"}}``, ``{"has_id": [ids]}`` and nested filters.
    """
    if isinstance(f, cpb.Filter):
        return f
    if not isinstance(f, Mapping):
        raise _bad_filter("a filter is a JSON object like {\"must\": [conditions]}")
    unknown = set(f) - set(_CLAUSES)
    if unknown:
        raise _bad_filter(f"unknown filter clauses {sorted(unknown)} (must, should, must_not)")
    out = cpb.Filter()
    for clause in _CLAUSES:
        conds = f.get(clause)
        if conds is None:
            continue
        if isinstance(conds, (str, bytes, Mapping)) or not isinstance(conds, Iterable):
            raise _bad_filter(f"{clause!r} is a list of conditions")
        getattr(out, clause).extend(condition_to_pb(c) for c in conds)
    return out


def optional_filter(f: Any) -> Optional[cpb.Filter]:
    return None if f is None else filter_to_pb(f)


def consistency_to_pb(c: Optional[str]) -> "cpb.Consistency":
    if c is None:
        return cpb.CONSISTENCY_UNSPECIFIED
    try:
        return CONSISTENCIES[c.lower()]
    except (KeyError, AttributeError):
        raise client_error("INVALID_ARGUMENT", f"consistency is one of {sorted(CONSISTENCIES)}, got {c!r}") from None


# ---- collections ----


def distance_to_pb(d: str) -> "vpb.Distance":
    try:
        return DISTANCES[d.lower()]
    except (KeyError, AttributeError):
        raise client_error("INVALID_ARGUMENT", f"distance is cosine, euclid or dot, got {d!r}") from None


def hnsw_to_pb(h: Any) -> Optional[vpb.HnswConfig]:
    if h is None:
        return None
    if isinstance(h, HnswConfig):
        return vpb.HnswConfig(m=h.m, ef_construction=h.ef_construction)
    if isinstance(h, Mapping):
        unknown = set(h) - {"m", "ef_construction"}
        if unknown:
            raise client_error("INVALID_ARGUMENT", f"hnsw takes m and ef_construction, not {sorted(unknown)}")
        return vpb.HnswConfig(m=int(h.get("m") or 0), ef_construction=int(h.get("ef_construction") or 0))
    raise client_error("INVALID_ARGUMENT", "hnsw is a dict {\"m\", \"ef_construction\"} or an HnswConfig")


def payload_index_to_pb(p: Any) -> vpb.PayloadIndex:
    key: Any
    kind: Any
    if isinstance(p, PayloadIndex):
        key, kind = p.key, p.kind
    elif isinstance(p, Mapping):
        key, kind = p.get("key"), p.get("kind")
    elif isinstance(p, (tuple, list)) and len(p) == 2:
        key, kind = p
    else:
        raise client_error("INVALID_ARGUMENT", f"a payload index is {{\"key\", \"kind\"}}, got {p!r}")
    if not isinstance(key, str) or not isinstance(kind, str) or kind.lower() not in INDEX_KINDS:
        raise client_error(
            "INVALID_ARGUMENT", f"a payload index has a string key and a kind in {sorted(INDEX_KINDS)}, got {p!r}"
        )
    return vpb.PayloadIndex(key=key, kind=INDEX_KINDS[kind.lower()])


def payload_indexes_to_pb(ps: Any) -> List[vpb.PayloadIndex]:
    if ps is None:
        return []
    if isinstance(ps, Mapping):  # {"city": "keyword", ...}
        return [payload_index_to_pb((k, v)) for k, v in ps.items()]
    return [payload_index_to_pb(p) for p in ps]


def rerank_to_pb(r: Any) -> Optional[vpb.Rerank]:
    """A rerank: a :class:`Rerank`, a dict in the HTTP shape, or a strategy name."""
    if r is None:
        return None
    if isinstance(r, vpb.Rerank):
        return r
    if isinstance(r, str):
        r = Rerank(strategy=r)
    if isinstance(r, Mapping):
        unknown = set(r) - {"strategy", "query_text", "params", "candidates"}
        if unknown:
            raise client_error("INVALID_ARGUMENT", f"rerank takes strategy, query_text, params, candidates, not {sorted(unknown)}")
        r = Rerank(
            strategy=r.get("strategy") or "",
            query_text=r.get("query_text"),
            params=r.get("params"),
            candidates=int(r.get("candidates") or 0),
        )
    if not isinstance(r, Rerank):
        raise client_error("INVALID_ARGUMENT", f"rerank is a dict, a Rerank or a strategy name, got {type(r).__name__}")
    out = vpb.Rerank(strategy=r.strategy, candidates=r.candidates)
    if r.query_text is not None:
        out.query_text = r.query_text
    if r.params:
        out.params.CopyFrom(struct_to_pb(r.params))
    return out


def rerank_from_pb(r: vpb.Rerank) -> Rerank:
    return Rerank(
        strategy=r.strategy,
        query_text=r.query_text if r.HasField("query_text") else None,
        params=struct_from_pb(r.params) if r.HasField("params") else None,
        candidates=r.candidates,
    )


def collection_config_to_pb(
    name: str,
    dimension: int,
    distance: str,
    shard_count: Optional[int],
    replication_factor: Optional[int],
    hnsw: Any,
    payload_indexes: Any,
    default_rerank: Any,
) -> vpb.CollectionConfig:
    if _is_bool(dimension) or not isinstance(dimension, numbers.Integral) or dimension <= 0:
        raise client_error("INVALID_ARGUMENT", f"dimension is a positive int, got {dimension!r}")
    c = vpb.CollectionConfig(
        name=name,
        dimension=int(dimension),
        distance=distance_to_pb(distance),
        shard_count=int(shard_count or 0),
        replication_factor=int(replication_factor or 0),
        payload_indexes=payload_indexes_to_pb(payload_indexes),
    )
    h = hnsw_to_pb(hnsw)
    if h is not None:
        c.hnsw.CopyFrom(h)
    r = rerank_to_pb(default_rerank)
    if r is not None:
        c.default_rerank.CopyFrom(r)
    return c


def collection_config_from_pb(c: vpb.CollectionConfig) -> CollectionConfig:
    return CollectionConfig(
        name=c.name,
        dimension=c.dimension,
        distance=DISTANCE_NAMES.get(c.distance, "unspecified"),
        shard_count=c.shard_count,
        replication_factor=c.replication_factor,
        hnsw=HnswConfig(m=c.hnsw.m, ef_construction=c.hnsw.ef_construction),
        payload_indexes=[PayloadIndex(p.key, INDEX_KIND_NAMES.get(p.kind, "unspecified")) for p in c.payload_indexes],
        default_rerank=rerank_from_pb(c.default_rerank) if c.HasField("default_rerank") else None,
    )


def collection_info_from_pb(r: vpb.GetCollectionResponse) -> CollectionInfo:
    return CollectionInfo(config=collection_config_from_pb(r.config), points_count=r.points_count)


def collection_status_from_pb(r: vpb.GetCollectionStatusResponse) -> CollectionStatus:
    shards = [
        ShardStatus(
            shard_id=s.shard_id,
            range_start=s.range_start,
            range_end=s.range_end,
            replicas=[
                ReplicaStatus(
                    worker_id=x.worker_id,
                    worker_address=x.worker_address,
                    state=REPLICA_STATES.get(x.state, "unspecified"),
                    is_leader=x.is_leader,
                )
                for x in s.replicas
            ],
            points_count=s.points_count,
        )
        for s in r.shards
    ]
    return CollectionStatus(config=collection_config_from_pb(r.config), shards=shards, epoch=r.epoch)


# ---- points ----


def _point(id: Any, vector: Any, payload: Any) -> vpb.Point:
    p = vpb.Point(id=point_id_to_pb(id), vector=vector_list(vector))
    s = payload_to_pb(payload)
    if s is not None:
        p.payload.CopyFrom(s)
    return p


def point_stream(
    points: Optional[Iterable[Any]],
    ids: Optional[Sequence[Any]],
    vectors: Any,
    payloads: Optional[Sequence[Any]],
) -> Tuple[Iterator[vpb.Point], Optional[int]]:
    """The points of an upsert, converted lazily, and how many there are (when known).

    Either ``points`` (dicts ``{"id", "vector", "payload"}``, :class:`Record` or
    ``vpb.Point``) or ``ids`` with ``vectors`` (a 2-D NumPy array or a list of lists) and
    optionally ``payloads``.
    """
    if points is not None:
        if ids is not None or vectors is not None or payloads is not None:
            raise client_error("INVALID_ARGUMENT", "pass points, or ids with vectors (and payloads), not both")
        total = len(points) if hasattr(points, "__len__") else None  # type: ignore[arg-type]

        def from_points() -> Iterator[vpb.Point]:
            for i, p in enumerate(points):
                if isinstance(p, vpb.Point):
                    yield p
                elif isinstance(p, Record):
                    yield _point(p.id, p.vector, p.payload)
                elif isinstance(p, Mapping):
                    unknown = set(p) - {"id", "vector", "payload"}
                    if unknown or "id" not in p or "vector" not in p:
                        raise client_error(
                            "INVALID_ARGUMENT", f"point {i} is a dict with id, vector and optional payload, got {sorted(p)}"
                        )
                    yield _point(p["id"], p["vector"], p.get("payload"))
                else:
                    raise client_error("INVALID_ARGUMENT", f"point {i} is a dict, got {type(p).__name__}")

        return from_points(), total
    if ids is None or vectors is None:
        raise client_error("INVALID_ARGUMENT", "upsert needs points, or ids and vectors")
    n = len(ids)
    if len(vectors) != n:
        raise client_error("INVALID_ARGUMENT", f"{n} ids but {len(vectors)} vectors")
    if payloads is not None and len(payloads) != n:
        raise client_error("INVALID_ARGUMENT", f"{n} ids but {len(payloads)} payloads")
    if hasattr(vectors, "ndim") and getattr(vectors, "ndim") != 2:
        raise client_error("INVALID_VECTOR", f"vectors is a 2-D array, got {getattr(vectors, 'ndim')} dimensions")

    def from_columns() -> Iterator[vpb.Point]:
        for i in range(n):
            yield _point(ids[i], vectors[i], payloads[i] if payloads is not None else None)

    return from_columns(), n


def chunks(it: Iterable[Any], size: int) -> Iterator[List[Any]]:
    it = iter(it)
    while True:
        chunk = list(islice(it, size))
        if not chunk:
            return
        yield chunk


def record_from_pb(p: vpb.RetrievedPoint, with_vector: bool, with_payload: bool) -> Record:
    return Record(
        id=point_id_from_pb(p.id),
        vector=list(p.vector) if with_vector else None,
        payload=(struct_from_pb(p.payload) if p.HasField("payload") else {}) if with_payload else None,
    )


# ---- search ----

_QUERY_FIELDS = (
    "vector",
    "top_k",
    "filter",
    "ef",
    "score_threshold",
    "with_payload",
    "with_vector",
    "consistency",
    "timeout",
    "rerank",
)


def query_of(item: Any, defaults: Mapping[str, Any]) -> SearchQuery:
    """One search of a batch or stream: a :class:`SearchQuery`, a dict of
    :meth:`~vectron.Client.search`'s parameters, or a bare vector (``defaults`` fill the
    rest)."""
    if isinstance(item, SearchQuery):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - set(_QUERY_FIELDS)
        if unknown:
            raise client_error("INVALID_ARGUMENT", f"unknown search parameters {sorted(unknown)}")
        if "vector" not in item:
            raise client_error("INVALID_ARGUMENT", "a search needs a vector")
        return SearchQuery(**{**defaults, **item})
    return SearchQuery(vector=item, **defaults)


def search_request(collection: str, q: SearchQuery) -> vpb.SearchRequest:
    if _is_bool(q.top_k) or not isinstance(q.top_k, numbers.Integral) or q.top_k <= 0:
        raise client_error("INVALID_ARGUMENT", f"top_k is a positive int, got {q.top_k!r}")
    r = vpb.SearchRequest(
        collection=collection,
        vector=vector_list(q.vector),
        top_k=int(q.top_k),
        ef=int(q.ef or 0),
        with_payload=bool(q.with_payload),
        with_vector=bool(q.with_vector),
        consistency=consistency_to_pb(q.consistency),
        timeout_ms=0 if q.timeout is None else max(1, math.ceil(q.timeout * 1000)),
    )
    f = optional_filter(q.filter)
    if f is not None:
        r.filter.CopyFrom(f)
    if q.score_threshold is not None:
        r.score_threshold = float(q.score_threshold)
    rr = rerank_to_pb(q.rerank)
    if rr is not None:
        r.rerank.CopyFrom(rr)
    return r


def scored_from_pb(h: vpb.ScoredPoint, with_vector: bool, with_payload: bool) -> ScoredPoint:
    return ScoredPoint(
        id=point_id_from_pb(h.id),
        score=h.score,
        payload=(struct_from_pb(h.payload) if h.HasField("payload") else {}) if with_payload else None,
        vector=list(h.vector) if with_vector else None,
        rerank_score=h.rerank_score if h.HasField("rerank_score") else None,
        explanation=h.explanation,
    )


def search_result_from_pb(r: vpb.SearchResponse, req: vpb.SearchRequest) -> SearchResult:
    return SearchResult(
        hits=[scored_from_pb(h, req.with_vector, req.with_payload) for h in r.hits],
        partial=r.partial,
        missing_shards=list(r.missing_shards),
        query_id=r.query_id,
        reranked=r.reranked,
        rerank_skipped=r.rerank_skipped,
    )


# ---- feedback ----


def feedback_request(
    collection: str,
    query_id: str,
    point_id: Any,
    relevance: float,
    clicked: Optional[bool],
    position: Optional[int],
    comment: Optional[str],
    query_text: Optional[str],
) -> vpb.SubmitFeedbackRequest:
    r = vpb.SubmitFeedbackRequest(
        collection=collection, query_id=query_id, point_id=point_id_to_pb(point_id), relevance=float(relevance)
    )
    if clicked is not None:
        r.clicked = bool(clicked)
    if position is not None:
        r.position = int(position)
    if comment is not None:
        r.comment = comment
    if query_text is not None:
        r.query_text = query_text
    return r


def feedback_stats_from_pb(s: vpb.FeedbackStats) -> FeedbackStats:
    m = s.model
    return FeedbackStats(
        count=s.count,
        queries=s.queries,
        points=s.points,
        mean_relevance=s.mean_relevance,
        positive=s.positive,
        negative=s.negative,
        clicked=s.clicked,
        top_points=[
            PointFeedback(
                point_id=point_id_from_pb(p.point_id),
                count=p.count,
                mean_relevance=p.mean_relevance,
                relevance_sum=p.relevance_sum,
                clicks=p.clicks,
            )
            for p in s.top_points
        ],
        model=FeedbackModel(
            version=m.version,
            weights=list(m.weights),
            examples=m.examples,
            train_queries=m.train_queries,
            held_out_queries=m.held_out_queries,
            ndcg_vector=m.ndcg_vector,
            ndcg_model=m.ndcg_model,
        )
        if s.HasField("model")
        else None,
    )


def token_pair_from_pb(t: apb.TokenPair) -> TokenPair:
    return TokenPair(
        access_token=t.access_token,
        refresh_token=t.refresh_token,
        access_expires_at=t.access_expires_at,
        refresh_expires_at=t.refresh_expires_at,
    )


# ---- addresses ----


def parse_url(url: str) -> Tuple[str, bool]:
    """A gateway address as (gRPC target, TLS?): ``host:port``, ``http://host:port``
    (plaintext) or ``https://host[:port]`` (TLS)."""
    u = url.strip()
    secure = False
    for scheme, tls in (("https://", True), ("http://", False), ("grpcs://", True), ("grpc://", False)):
        if u.lower().startswith(scheme):
            u, secure = u[len(scheme) :], tls
            break
    u = u.rstrip("/")
    if not u or "/" in u:
        raise ValueError(f"a gateway address is host:port or http://host:port, got {url!r}")
    host_has_port = u.rsplit(":", 1)[-1].isdigit() and (":" in u) and not (u.startswith("[") and u.endswith("]"))
    if not host_has_port:
        u = f"{u}:{443 if secure else 8081}"
    return u, secure

