"""The asyncio client: the same methods as :class:`vectron.Client`, awaited.

Requests, batching, pagination and responses are built by the same plans
(``vectron._ops``) as the sync client's; only the calls differ.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import grpc
import grpc.aio

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

__all__ = ["AsyncClient"]


async def _each(items: Any) -> AsyncIterator[Any]:
    """The items of a sync or an async iterable."""
    if hasattr(items, "__aiter__"):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x


class AsyncClient:
    """An asyncio client of a Vectron gateway (grpc.aio); see :class:`vectron.Client`
    for the parameters and each method. Create it inside the event loop that uses it;
    ``async with AsyncClient(...) as client:`` closes it."""

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
            grpc.aio.secure_channel(target, credentials, options=opts)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=opts)
        )
        self._stubs: Dict[str, Any] = {
            "vectron": vectron_pb2_grpc.VectronServiceStub(self._channel),  # type: ignore[no-untyped-call]
            "auth": auth_pb2_grpc.AuthServiceStub(self._channel),  # type: ignore[no-untyped-call]
        }
        self._refresh_lock = asyncio.Lock()

    # ---- life cycle and credentials ----

    @classmethod
    async def login(
        cls,
        url: str,
        username: str,
        password: str,
        timeout: Optional[float] = None,
        retries: Union[int, RetryPolicy, None] = 3,
        *,
        ca_file: Optional[str] = None,
    ) -> "AsyncClient":
        """See :meth:`vectron.Client.login`."""
        client = cls(url, timeout=timeout, retries=retries, ca_file=ca_file)
        try:
            client._session.set_tokens(await client._run(ops.login(username, password)))
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def tokens(self) -> Optional[TokenPair]:
        return self._session.tokens

    @property
    def token(self) -> Optional[str]:
        return self._session.token

    async def logout(self) -> None:
        if self._session.tokens is not None:
            await self._run(ops.logout(self._session.tokens.refresh_token))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- running plans ----

    async def _invoke(self, call: Call) -> Any:
        method = getattr(self._stubs[call.service], call.method)
        attempt = 0
        refreshed = False
        while True:
            generation = self._session.generation
            try:
                return await method(call.request, metadata=self._session.metadata(call), timeout=self.timeout)
            except grpc.RpcError as rpc:
                error = from_rpc_error(rpc)
            if not refreshed and self._session.should_refresh(call, error):
                refreshed = True
                await self._refresh(generation)
                continue
            delay = self._retry.delay(call, error, attempt)
            if delay is None:
                raise error
            attempt += 1
            await asyncio.sleep(delay)

    async def _refresh(self, generation: int) -> None:
        async with self._refresh_lock:
            if self._session.generation != generation:
                return
            tokens = cv.token_pair_from_pb(await self._invoke(self._session.refresh_call()))
            self._session.set_tokens(tokens)

    async def _run(self, plan: "ops.Plan[T]") -> T:
        try:
            step = next(plan)
            while True:
                step = next(plan) if isinstance(step, ops.Emit) else plan.send(await self._invoke(step))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            plan.close()

    async def _iterate(self, plan: "ops.Plan[Any]") -> AsyncIterator[Any]:
        try:
            step = next(plan)
            while True:
                if isinstance(step, ops.Emit):
                    for item in step.items:
                        yield item
                    step = next(plan)
                else:
                    step = plan.send(await self._invoke(step))
        except StopIteration:
            return
        finally:
            plan.close()

    # ---- collections ----

    async def create_collection(
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
        """See :meth:`vectron.Client.create_collection`."""
        return await self._run(
            ops.create_collection(
                name, dimension, distance, shard_count, replication_factor, hnsw, payload_indexes, default_rerank
            )
        )

    async def get_collection(self, name: str) -> CollectionInfo:
        """See :meth:`vectron.Client.get_collection`."""
        return await self._run(ops.get_collection(name))

    async def list_collections(self) -> List[CollectionConfig]:
        """See :meth:`vectron.Client.list_collections`."""
        return await self._run(ops.list_collections())

    async def delete_collection(self, name: str) -> None:
        """See :meth:`vectron.Client.delete_collection`."""
        return await self._run(ops.delete_collection(name))

    async def collection_status(self, name: str) -> CollectionStatus:
        """See :meth:`vectron.Client.collection_status`."""
        return await self._run(ops.collection_status(name))

    async def collection_exists(self, name: str) -> bool:
        """See :meth:`vectron.Client.collection_exists`."""
        return any(c.name == name for c in await self.list_collections())

    # ---- points ----

    async def upsert(
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
        """See :meth:`vectron.Client.upsert`."""
        return await self._run(ops.upsert(name, points, ids, vectors, payloads, batch_size, wait, progress))

    async def get(
        self,
        name: str,
        ids: Iterable[PointId],
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: Optional[str] = None,
    ) -> List[Record]:
        """See :meth:`vectron.Client.get`."""
        return await self._run(ops.get(name, ids, with_payload, with_vector, consistency))

    async def delete(
        self,
        name: str,
        ids: Optional[Iterable[PointId]] = None,
        filter: Optional[Filter] = None,
        wait: bool = True,
    ) -> int:
        """See :meth:`vectron.Client.delete`."""
        return await self._run(ops.delete(name, ids, filter, wait))

    def scroll(
        self,
        name: str,
        filter: Optional[Filter] = None,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: Optional[str] = None,
    ) -> AsyncIterator[Record]:
        """See :meth:`vectron.Client.scroll`; ``async for record in client.scroll(...)``."""
        return self._iterate(ops.scroll(name, filter, batch_size, with_payload, with_vector, consistency))

    async def scroll_page(
        self,
        name: str,
        filter: Optional[Filter] = None,
        limit: int = 256,
        cursor: Optional[bytes] = None,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: Optional[str] = None,
    ) -> Tuple[List[Record], Optional[bytes]]:
        """See :meth:`vectron.Client.scroll_page`."""
        return await self._run(ops.scroll_page(name, filter, limit, cursor, with_payload, with_vector, consistency))

    async def count(self, name: str, filter: Optional[Filter] = None, consistency: Optional[str] = None) -> int:
        """See :meth:`vectron.Client.count`."""
        return await self._run(ops.count(name, filter, consistency))

    # ---- search ----

    async def search(
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
        """See :meth:`vectron.Client.search`."""
        q = SearchQuery(
            vector, **query_defaults(top_k, filter, ef, score_threshold, with_payload, with_vector, consistency, timeout, rerank)
        )
        return await self._run(ops.search(name, q))

    async def search_batch(
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
        """See :meth:`vectron.Client.search_batch`."""
        defaults = query_defaults(top_k, filter, ef, score_threshold, with_payload, with_vector, consistency, timeout, rerank)
        return await self._run(ops.search_batch(name, queries, defaults))

    async def search_stream(
        self,
        name: str,
        queries: Any,
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
    ) -> AsyncIterator[SearchResult]:
        """See :meth:`vectron.Client.search_stream`; ``queries`` may also be an async
        iterable. ``async for result in client.search_stream(...)``."""
        defaults = query_defaults(top_k, filter, ef, score_threshold, with_payload, with_vector, consistency, timeout, rerank)
        sent: "list[Any]" = []
        failure: "list[BaseException]" = []

        async def requests() -> AsyncIterator[Any]:
            try:
                async for q in _each(queries):
                    req = cv.search_request(name, cv.query_of(q, defaults))
                    sent.append(req)
                    yield req
            except Exception as e:  # surfaced to the caller after the answers before it
                failure.append(e)

        call = self._stubs["vectron"].SearchStream(requests(), metadata=self._session.metadata())
        i = 0
        try:
            async for r in call:
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

    async def submit_feedback(
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
        """See :meth:`vectron.Client.submit_feedback`."""
        return await self._run(
            ops.submit_feedback(name, query_id, point_id, relevance, clicked, position, comment, query_text)
        )

    async def feedback_stats(self, name: str) -> FeedbackStats:
        """See :meth:`vectron.Client.feedback_stats`."""
        return await self._run(ops.feedback_stats(name))
