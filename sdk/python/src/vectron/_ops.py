"""Every operation of the client, written once, without I/O.

An operation is a generator (a *plan*): it yields a :class:`~vectron._retry.Call` for
each RPC it needs and receives the response message back, and returns the operation's
result. Operations that hand points to the caller as they arrive (scroll) also yield
:class:`Emit`. The sync client runs plans with blocking calls, the asyncio client with
awaits, so the request building, batching, pagination and response parsing exist once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generator, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from . import _convert as cv
from ._proto.vectron.v1 import auth_pb2 as apb
from ._proto.vectron.v1 import vectron_pb2 as vpb
from ._retry import Call
from .errors import client_error
from .types import (
    CollectionConfig,
    CollectionInfo,
    CollectionStatus,
    FeedbackStats,
    Record,
    SearchQuery,
    SearchResult,
    TokenPair,
    UpsertResult,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Emit:
    """Items a streaming plan hands to its caller."""

    items: List[Any]


Plan = Generator[Union[Call, Emit], Any, T]


def _v(method: str, request: Any, idempotent: bool = True) -> Call:
    return Call("vectron", method, request, idempotent=idempotent)


# ---- collections ----


def create_collection(
    name: str,
    dimension: int,
    distance: str,
    shard_count: Optional[int],
    replication_factor: Optional[int],
    hnsw: Any,
    payload_indexes: Any,
    default_rerank: Any,
) -> Plan[CollectionConfig]:
    config = cv.collection_config_to_pb(
        name, dimension, distance, shard_count, replication_factor, hnsw, payload_indexes, default_rerank
    )
    # Not idempotent: repeated after an unknown outcome it could answer ALREADY_EXISTS
    # for the collection it created itself.
    r = yield _v("CreateCollection", vpb.CreateCollectionRequest(config=config), idempotent=False)
    return cv.collection_config_from_pb(r.config)


def get_collection(name: str) -> Plan[CollectionInfo]:
    r = yield _v("GetCollection", vpb.GetCollectionRequest(name=name))
    return cv.collection_info_from_pb(r)


def list_collections() -> Plan[List[CollectionConfig]]:
    r = yield _v("ListCollections", vpb.ListCollectionsRequest())
    return [cv.collection_config_from_pb(c) for c in r.collections]


def delete_collection(name: str) -> Plan[None]:
    yield _v("DeleteCollection", vpb.DeleteCollectionRequest(name=name), idempotent=False)
    return None


def collection_status(name: str) -> Plan[CollectionStatus]:
    r = yield _v("GetCollectionStatus", vpb.GetCollectionStatusRequest(name=name))
    return cv.collection_status_from_pb(r)


# ---- points ----


def _progress_bar(progress: Union[bool, Any], total: Optional[int]) -> Any:
    if not progress:
        return None
    if progress is not True:  # a tqdm-like object of the caller's
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError as e:
        raise ImportError("progress=True needs tqdm: pip install 'vectron-client[progress]'") from e
    return tqdm(total=total, unit="pt", desc="upsert")


def upsert(
    name: str,
    points: Optional[Iterable[Any]],
    ids: Optional[Sequence[Any]],
    vectors: Any,
    payloads: Optional[Sequence[Any]],
    batch_size: int,
    wait: bool,
    progress: Any,
) -> Plan[UpsertResult]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= cv.MAX_POINTS_PER_UPSERT:
        raise client_error("INVALID_ARGUMENT", f"batch_size is in 1..={cv.MAX_POINTS_PER_UPSERT}, got {batch_size!r}")
    stream, total = cv.point_stream(points, ids, vectors, payloads)
    bar = _progress_bar(progress, total)
    started = time.perf_counter()
    upserted = batches = 0
    try:
        for chunk in cv.chunks(stream, batch_size):
            # Idempotent: points are written by id, so a repeated batch writes the same.
            r = yield _v("Upsert", vpb.UpsertRequest(collection=name, points=chunk, wait=wait))
            upserted += r.upserted
            batches += 1
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None and progress is True:
            bar.close()
    return UpsertResult(upserted=upserted, batches=batches, seconds=time.perf_counter() - started)


def _ids(ids: Iterable[Any]) -> List[Any]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        ids = [ids]
    return [cv.point_id_to_pb(i) for i in ids]


def get(
    name: str, ids: Iterable[Any], with_payload: bool, with_vector: bool, consistency: Optional[str]
) -> Plan[List[Record]]:
    out: List[Record] = []
    for chunk in cv.chunks(_ids(ids), cv.MAX_IDS_PER_REQUEST):
        r = yield _v(
            "Get",
            vpb.GetRequest(
                collection=name,
                ids=chunk,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=cv.consistency_to_pb(consistency),
            ),
        )
        out.extend(cv.record_from_pb(p, with_vector, with_payload) for p in r.points)
    return out


def delete(name: str, ids: Optional[Iterable[Any]], filter: Any, wait: bool) -> Plan[int]:
    if (ids is None) == (filter is None):
        raise client_error("INVALID_ARGUMENT", "delete takes ids or a filter (exactly one)")
    deleted = 0
    if filter is not None:
        r = yield _v("Delete", vpb.DeleteRequest(collection=name, filter=cv.filter_to_pb(filter), wait=wait))
        return int(r.deleted)
    for chunk in cv.chunks(_ids(ids), cv.MAX_IDS_PER_REQUEST):  # type: ignore[arg-type]
        r = yield _v("Delete", vpb.DeleteRequest(collection=name, ids=vpb.PointIdList(ids=chunk), wait=wait))
        deleted += r.deleted
    return deleted


def _scroll_request(
    name: str, filter: Any, limit: int, cursor: bytes, with_payload: bool, with_vector: bool, consistency: Optional[str]
) -> vpb.ScrollRequest:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= cv.MAX_SCROLL_LIMIT:
        raise client_error("INVALID_ARGUMENT", f"a scroll page holds 1..={cv.MAX_SCROLL_LIMIT} points, got {limit!r}")
    r = vpb.ScrollRequest(
        collection=name,
        limit=limit,
        cursor=cursor,
        with_payload=with_payload,
        with_vector=with_vector,
        consistency=cv.consistency_to_pb(consistency),
    )
    f = cv.optional_filter(filter)
    if f is not None:
        r.filter.CopyFrom(f)
    return r


def scroll_page(
    name: str,
    filter: Any,
    limit: int,
    cursor: Optional[bytes],
    with_payload: bool,
    with_vector: bool,
    consistency: Optional[str],
) -> Plan[Tuple[List[Record], Optional[bytes]]]:
    req = _scroll_request(name, filter, limit, cursor or b"", with_payload, with_vector, consistency)
    r = yield _v("Scroll", req)
    return [cv.record_from_pb(p, with_vector, with_payload) for p in r.points], (r.next_cursor or None)


def scroll(
    name: str, filter: Any, batch_size: int, with_payload: bool, with_vector: bool, consistency: Optional[str]
) -> Plan[None]:
    req = _scroll_request(name, filter, batch_size, b"", with_payload, with_vector, consistency)
    while True:
        r = yield _v("Scroll", req)
        yield Emit([cv.record_from_pb(p, with_vector, with_payload) for p in r.points])
        if not r.next_cursor:
            return None
        next_req = vpb.ScrollRequest()
        next_req.CopyFrom(req)
        next_req.cursor = r.next_cursor
        req = next_req


def count(name: str, filter: Any, consistency: Optional[str]) -> Plan[int]:
    req = vpb.CountRequest(collection=name, consistency=cv.consistency_to_pb(consistency))
    f = cv.optional_filter(filter)
    if f is not None:
        req.filter.CopyFrom(f)
    r = yield _v("Count", req)
    return int(r.count)


# ---- search ----


def search(name: str, query: SearchQuery) -> Plan[SearchResult]:
    req = cv.search_request(name, query)
    r = yield _v("Search", req)
    return cv.search_result_from_pb(r, req)


def search_batch(name: str, queries: Iterable[Any], defaults: Mapping[str, Any]) -> Plan[List[SearchResult]]:
    requests = [cv.search_request(name, cv.query_of(q, defaults)) for q in queries]
    out: List[SearchResult] = []
    for chunk in cv.chunks(requests, cv.MAX_SEARCH_BATCH):
        r = yield _v("SearchBatch", vpb.SearchBatchRequest(searches=chunk))
        if len(r.results) != len(chunk):
            raise client_error("INTERNAL", f"{len(chunk)} searches answered with {len(r.results)} results")
        out.extend(cv.search_result_from_pb(res, req) for res, req in zip(r.results, chunk))
    return out


# ---- feedback ----


def submit_feedback(
    name: str,
    query_id: str,
    point_id: Any,
    relevance: float,
    clicked: Optional[bool],
    position: Optional[int],
    comment: Optional[str],
    query_text: Optional[str],
) -> Plan[None]:
    req = cv.feedback_request(name, query_id, point_id, relevance, clicked, position, comment, query_text)
    # The same hit judged again in the same query replaces the earlier judgement.
    yield _v("SubmitFeedback", req)
    return None


def feedback_stats(name: str) -> Plan[FeedbackStats]:
    r = yield _v("GetFeedbackStats", vpb.GetFeedbackStatsRequest(collection=name))
    return cv.feedback_stats_from_pb(r)


# ---- auth ----


def login(username: str, password: str) -> Plan[TokenPair]:
    # Repeating a login only makes another token family: safe.
    r = yield Call("auth", "Login", apb.LoginRequest(username=username, password=password), authenticated=False)
    return cv.token_pair_from_pb(r)


def logout(refresh_token: str) -> Plan[None]:
    yield Call("auth", "Logout", apb.LogoutRequest(refresh_token=refresh_token), authenticated=False)
    return None
