"""The synchronous client."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import grpc

from . import _convert as cv
from . import _ops as ops
from ._channel import channel_options, query_defaults, tls_credentials
from ._proto.vectron.v1 import auth_pb2_grpc, vectron_pb2_grpc
from ._retry import Call, RetryPolicy, Session
from .errors import from_rpc_error
from .types import (
    CollectionConfig,
    CollectionInfo,
    CollectionStatus,
    FeedbackStats,
    Filter,
    PointId,
    Record,
    Rerank,
    SearchQuery,
    SearchResult,
    TokenPair,
    UpsertResult,
)

T = TypeVar("T")

__all__ = ["Client"]


class Client:
    """A client of a Vectron gateway's gRPC API (``vectron.v1.VectronService``).

    Args:
        url: the gateway's gRPC address: ``"127.0.0.1:8081"``, ``"http://host:8081"``
            (plaintext) or ``"https://host"`` (TLS).
        api_key: sent as ``x-api-key`` with every call.
        token: an access token, sent as ``authorization: Bearer <token>`` (see
            :meth:`login` for a client that also refreshes it).
        timeout: deadline of each attempt of a call, in seconds (``None``: none).
        retries: retries of a retryable error (an int, or a :class:`RetryPolicy`).
        ca_file: for an ``https://`` URL, trust only the CA certificate(s) in this PEM
            file (e.g. ``vectron dev --tls``'s ``data/tls/ca.crt``) instead of the
            system's.

    Safe to share between threads. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str = "127.0.0.1:8081",
        api_key: Optional[str] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        retries: Union[int, RetryPolicy, None] = 3,
        *,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
        ca_file: Optional[str] = None,
    ) -> None:
        self._session = Session(api_key=api_key, token=token)
        self._retry = RetryPolicy.of(retries)
        self.timeout = timeout
        self.url = url
        target, secure = cv.parse_url(url)
        opts = channel_options(options)
        credentials = tls_credentials(secure, ca_file)
        self._channel = (
            grpc.secure_channel(target, credentials, options=opts)
            if credentials is not None
            else grpc.insecure_channel(target, options=opts)
        )
        self._stubs: Dict[str, Any] = {
            "vectron": vectron_pb2_grpc.VectronServiceStub(self._channel),  # type: ignore[no-untyped-call]
            "auth": auth_pb2_grpc.AuthServiceStub(self._channel),  # type: ignore[no-untyped-call]
        }
        self._refresh_lock = threading.Lock()

    # ---- life cycle and credentials ----

    @classmethod
    def login(
        cls,
        url: str,
        username: str,
        password: str,
        timeout: Optional[float] = None,
        retries: Union[int, RetryPolicy, None] = 3,
        *,
        ca_file: Optional[str] = None,
    ) -> "Client":
        """Logs in (``vectron.v1.AuthService/Login`` on the gateway's gRPC address) and
        returns a client sending the access token; when the server refuses it as expired,
        the client refreshes it (``Refresh``) once and repeats the call."""
        client = cls(url, timeout=timeout, retries=retries, ca_file=ca_file)
        try:
            client._session.set_tokens(client._run(ops.login(username, password)))
        except BaseException:
            client.close()
            raise
        return client

    @property
    def tokens(self) -> Optional[TokenPair]:
        """The tokens of a client made by :meth:`login` (refreshed as they expire)."""
        return self._session.tokens

    @property
    def token(self) -> Optional[str]:
        """The access token sent, if any."""
        return self._session.token

    def logout(self) -> None:
        """Revokes the refresh token of a client made by :meth:`login`."""
        if self._session.tokens is not None:
            self._run(ops.logout(self._session.tokens.refresh_token))

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- running plans ----

    def _invoke(self, call: Call) -> Any:
        method = getattr(self._stubs[call.service], call.method)
        attempt = 0
        refreshed = False
        while True:
            generation = self._session.generation
            try:
                return method(call.request, metadata=self._session.metadata(call), timeout=self.timeout)
            except grpc.RpcError as rpc:
                error = from_rpc_error(rpc)
            if not refreshed and self._session.should_refresh(call, error):
                refreshed = True
                self._refresh(generation)
                continue
            delay = self._retry.delay(call, error, attempt)
            if delay is None:
                raise error
            attempt += 1
            time.sleep(delay)

    def _refresh(self, generation: int) -> None:
        with self._refresh_lock:
            if self._session.generation != generation:
                return  # another thread refreshed meanwhile
            tokens = cv.token_pair_from_pb(self._invoke(self._session.refresh_call()))
            self._session.set_tokens(tokens)

    def _run(self, plan: "ops.Plan[T]") -> T:
        try:
            step = next(plan)
            while True:
                step = next(plan) if isinstance(step, ops.Emit) else plan.send(self._invoke(step))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            plan.close()

    def _iterate(self, plan: "ops.Plan[Any]") -> Iterator[Any]:
        try:
            step = next(plan)
            while True:
                if isinstance(step, ops.Emit):
                    yield from step.items
                    step = next(plan)
                else:
                    step = plan.send(self._invoke(step))
        except StopIteration:
            return
        finally:
            plan.close()

    # ---- collections ----

    def create_collection(
        self,
        name: str,
        dimension: int,
        distance: str = "cosine",
        shard_count: Optional[int] = None,
        replication_factor: Optional[int] = None,
        hnsw: Optional[Mapping[str, int]] = None,
        payload_indexes: Optional[Iterable[Any]] = None,
        default_rerank: Union[Rerank, Mapping[str, Any], None] = None,
    ) -> CollectionConfig:
        """Creates a collection and returns its configuration (defaults filled in).

        Args:
            name: ``[a-zA-Z0-9_-]{1,64}``.
            dimension: every vector's length.
            distance: ``"cosine"`` (vectors normalised on write), ``"euclid"`` or ``"dot"``.
            shard_count, replication_factor: ``None``: the server's default, 1.
            hnsw: ``{"m": 16, "ef_construction": 200}`` (either may be left out).
            payload_indexes: ``[{"key": "city", "kind": "keyword"}, ...]``, ``(key, kind)``
                pairs or ``{"city": "keyword"}``; kinds keyword, integer, float, bool.
            default_rerank: the rerank of searches that name none
                (``{"strategy", "query_text", "params", "candidates"}``).

        Raises:
            CollectionAlreadyExists: the name is taken.
        """
        return self._run(
            ops.create_collection(
                name, dimension, distance, shard_count, replication_factor, hnsw, payload_indexes, default_rerank
            )
        )

    def get_collection(self, name: str) -> CollectionInfo:
        """A collection's configuration and point count. Raises CollectionNotFound."""
        return self._run(ops.get_collection(name))

    def list_collections(self) -> List[CollectionConfig]:
        """The collections the credential may see."""
        return self._run(ops.list_collections())

    def delete_collection(self, name: str) -> None:
        """Deletes a collection and its points. Raises CollectionNotFound."""
        return self._run(ops.delete_collection(name))

    def collection_status(self, name: str) -> CollectionStatus:
        """Where the collection's shards and replicas are, and their leaders."""
        return self._run(ops.collection_status(name))

    def collection_exists(self, name: str) -> bool:
        """Whether the collection exists."""
        return any(c.name == name for c in self.list_collections())

    # ---- points ----

    def upsert(
        self,
        name: str,
        points: Optional[Iterable[Any]] = None,
        *,
        ids: Optional[Sequence[PointId]] = None,
        vectors: Any = None,
        payloads: Optional[Sequence[Optional[Mapping[str, Any]]]] = None,
        batch_size: int = 1000,
        wait: bool = True,
        progress: Any = False,
    ) -> UpsertResult:
        """Writes points (a point with an existing id replaces it), ``batch_size`` per request.

        Either ``points``, dicts ``{"id": 1, "vector": [...], "payload": {...}}`` (payload
        optional), or ``ids=`` with ``vectors=`` (a 2-D NumPy array or a list of lists) and
        optionally ``payloads=``. Batches are idempotent by id, so a failed batch is retried
        safely. ``wait=False`` answers once the shard leaders hold each batch, before it is
        applied. ``progress=True`` shows a tqdm bar (or pass a tqdm-like object).

        Returns:
            an :class:`UpsertResult` (points written, requests, seconds).

        Raises:
            DimensionMismatch: a vector's length differs from the collection's dimension.
        """
        return self._run(ops.upsert(name, points, ids, vectors, payloads, batch_size, wait, progress))

    def get(
        self,
        name: str,
        ids: Iterable[PointId],
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: Optional[str] = None,
    ) -> List[Record]:
        """The points with these ids, in request order; missing ids are left out."""
        return self._run(ops.get(name, ids, with_payload, with_vector, consistency))

    def delete(
        self,
        name: str,
        ids: Optional[Iterable[PointId]] = None,
        filter: Optional[Filter] = None,
        wait: bool = True,
    ) -> int:
        """Deletes the points with these ids, or those matching ``filter``; returns how many."""
        return self._run(ops.delete(name, ids, filter, wait))

    def scroll(
        self,
        name: str,
        filter: Optional[Filter] = None,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: Optional[str] = None,
    ) -> Iterator[Record]:
        """Every point (matching ``filter``), fetched ``batch_size`` per request following
        the server's cursor, each exactly once."""
        return self._iterate(ops.scroll(name, filter, batch_size, with_payload, with_vector, consistency))

    def scroll_page(
        self,
        name: str,
        filter: Optional[Filter] = None,
        limit: int = 256,
        cursor: Optional[bytes] = None,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: Optional[str] = None,
    ) -> Tuple[List[Record], Optional[bytes]]:
        """One page of a scroll and the cursor of the next (``None`` after the last)."""
        return self._run(ops.scroll_page(name, filter, limit, cursor, with_payload, with_vector, consistency))

    def count(self, name: str, filter: Optional[Filter] = None, consistency: Optional[str] = None) -> int:
        """How many points (match ``filter``); always exact."""
        return self._run(ops.count(name, filter, consistency))

    # ---- search ----

    def search(
        self,
        name: str,
        vector: Sequence[float],
        top_k: int = 10,
        filter: Optional[Filter] = None,
        ef: Optional[int] = None,
        score_threshold: Optional[float] = None,
        with_payload: bool = False,
        with_vector: bool = False,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        rerank: Union[Rerank, Mapping[str, Any], str, None] = None,
    ) -> SearchResult:
        """The ``top_k`` nearest points to ``vector``.

        Args:
            filter: only points matching it (the HTTP API's JSON filter shape).
            ef: search breadth (``None``: the collection's default, max(top_k, 64)).
            score_threshold: drop hits worse than this (below it for cosine/dot, above for
                euclid).
            consistency: ``"linearizable"``, ``"leader"`` (default) or ``"any"``.
            timeout: the server's deadline for the search, in seconds; shards that miss it
                make the answer ``partial``.
            rerank: re-order the hits with the reranker (``{"strategy": "rule",
                "query_text": ..., "params": {...}, "candidates": 40}``).
        """
        q = SearchQuery(
            vector, **query_defaults(top_k, filter, ef, score_threshold, with_payload, with_vector, consistency, timeout, rerank)
        )
        return self._run(ops.search(name, q))

    def search_batch(
        self,
        name: str,
        queries: Iterable[Any],
        *,
        top_k: int = 10,
        filter: Optional[Filter] = None,
        ef: Optional[int] = None,
        score_threshold: Optional[float] = None,
        with_payload: bool = False,
        with_vector: bool = False,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        rerank: Union[Rerank, Mapping[str, Any], str, None] = None,
    ) -> List[SearchResult]:
        """Many searches in one request each 256 (the server's cap), answers in order.

        ``queries``: vectors (rows of a 2-D array too), :class:`SearchQuery` objects, or
        dicts of :meth:`search`'s parameters; the keyword arguments are the defaults.
        """
        defaults = query_defaults(top_k, filter, ef, score_threshold, with_payload, with_vector, consistency, timeout, rerank)
        return self._run(ops.search_batch(name, queries, defaults))

    def search_stream(
        self,
        name: str,
        queries: Iterable[Any],
        *,
        top_k: int = 10,
        filter: Optional[Filter] = None,
        ef: Optional[int] = None,
        score_threshold: Optional[float] = None,
        with_payload: bool = False,
        with_vector: bool = False,
        consistency: Optional[str] = None,
        timeout: Optional[float] = None,
        rerank: Union[Rerank, Mapping[str, Any], str, None] = None,
    ) -> Iterator[SearchResult]:
        """Searches pipelined over one ``SearchStream`` call: yields one answer per query,
        in order, while later queries are still being sent (``queries`` is read lazily).

        Not retried: a failed search ends the stream with its error (after the answers
        before it).
        """
        defaults = query_defaults(top_k, filter, ef, score_threshold, with_payload, with_vector, consistency, timeout, rerank)
        sent: "list[Any]" = []
        failure: "list[BaseException]" = []

        def requests() -> Iterator[Any]:
            try:
                for q in queries:
                    req = cv.search_request(name, cv.query_of(q, defaults))
                    sent.append(req)
                    yield req
            except Exception as e:  # surfaced to the caller after the answers before it
                failure.append(e)

        call = self._stubs["vectron"].SearchStream(requests(), metadata=self._session.metadata())
        i = 0
        try:
            for r in call:
                yield cv.search_result_from_pb(r, sent[i])
                i += 1
        except grpc.RpcError as rpc:
            if failure:
                raise failure[0] from None
            raise from_rpc_error(rpc) from None
        finally:
            call.cancel()
        if failure:
            raise failure[0]

    # ---- feedback ----

    def submit_feedback(
        self,
        name: str,
        query_id: str,
        point_id: PointId,
        relevance: float,
        clicked: Optional[bool] = None,
        position: Optional[int] = None,
        comment: Optional[str] = None,
        query_text: Optional[str] = None,
    ) -> None:
        """Records a judgement of one hit of a search (``query_id`` from its answer);
        ``relevance`` in [-1, 1]. The same hit judged again in the same query replaces the
        earlier judgement."""
        return self._run(
            ops.submit_feedback(name, query_id, point_id, relevance, clicked, position, comment, query_text)
        )

    def feedback_stats(self, name: str) -> FeedbackStats:
        """What the collection's kept feedback adds up to, and its feedback model."""
        return self._run(ops.feedback_stats(name))
