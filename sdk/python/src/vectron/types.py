"""The client's data types: plain dataclasses, independent of the generated protobuf code.

Point ids are ``int`` (0 to 2**64 - 1) or ``str`` (1-256 characters), as the proto's
``PointId`` oneof models them: ``7`` and ``"7"`` are different points. Payloads are
JSON-like ``dict``s; integers stay integers and floats stay floats both ways (the wire's
``Value`` has separate ``integer_value`` and ``double_value``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

PointId = Union[int, str]
"""A point's id: a non-negative 64-bit integer or a string of 1-256 characters."""

Payload = Dict[str, Any]
"""A point's payload: a JSON object."""

Filter = Mapping[str, Any]
"""A filter in the HTTP API's JSON shape, e.g.
``{"must": [{"key": "city", "match": {"value": "London"}}]}``."""

Distance = str
"""``"cosine"``, ``"euclid"`` or ``"dot"``."""

Consistency = str
"""``"linearizable"``, ``"leader"`` (the default) or ``"any"``."""

__all__ = [
    "PointId",
    "Payload",
    "Filter",
    "Distance",
    "Consistency",
    "Record",
    "ScoredPoint",
    "SearchResult",
    "SearchQuery",
    "UpsertResult",
    "HnswConfig",
    "PayloadIndex",
    "Rerank",
    "CollectionConfig",
    "CollectionInfo",
    "ReplicaStatus",
    "ShardStatus",
    "CollectionStatus",
    "PointFeedback",
    "FeedbackModel",
    "FeedbackStats",
    "TokenPair",
]


@dataclass
class Record:
    """A stored point as reads return it; ``vector`` and ``payload`` only when asked for."""

    id: PointId
    vector: Optional[List[float]] = None
    payload: Optional[Payload] = None


@dataclass
class ScoredPoint:
    """A search hit.

    ``score`` is the vector score (cosine similarity or dot product: higher is closer;
    euclid: the distance, lower is closer). ``rerank_score`` and ``explanation`` are set
    when the answer was reranked.
    """

    id: PointId
    score: float
    payload: Optional[Payload] = None
    vector: Optional[List[float]] = None
    rerank_score: Optional[float] = None
    explanation: str = ""


@dataclass
class SearchResult:
    """A search's answer. Iterating it (or ``len``, indexing) goes over ``hits``.

    Attributes:
        hits: best first.
        partial: some shard did not answer in time; the hits come from the others.
        missing_shards: the shards that did not answer.
        query_id: names this answer in :meth:`~vectron.Client.submit_feedback`.
        reranked: the hits are in the reranker's order.
        rerank_skipped: why a rerank that was asked for did not happen.
    """

    hits: List[ScoredPoint]
    partial: bool = False
    missing_shards: List[int] = field(default_factory=list)
    query_id: str = ""
    reranked: bool = False
    rerank_skipped: str = ""

    def __iter__(self) -> Iterator[ScoredPoint]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> ScoredPoint:
        return self.hits[i]

    @property
    def ids(self) -> List[PointId]:
        """The hits' ids, best first."""
        return [h.id for h in self.hits]


@dataclass
class SearchQuery:
    """One search of :meth:`~vectron.Client.search_batch` or
    :meth:`~vectron.Client.search_stream` (the same parameters as
    :meth:`~vectron.Client.search`). ``timeout`` is the server-side deadline in seconds."""

    vector: Sequence[float]
    top_k: int = 10
    filter: Optional[Filter] = None
    ef: Optional[int] = None
    score_threshold: Optional[float] = None
    with_payload: bool = False
    with_vector: bool = False
    consistency: Optional[Consistency] = None
    timeout: Optional[float] = None
    rerank: Optional[Union["Rerank", Mapping[str, Any]]] = None


@dataclass
class UpsertResult:
    """What an upsert did: points written, in how many requests, in how long."""

    upserted: int
    batches: int
    seconds: float

    @property
    def points_per_second(self) -> float:
        return self.upserted / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class HnswConfig:
    """HNSW build parameters (0: the server's default, 16 and 200)."""

    m: int = 0
    ef_construction: int = 0


@dataclass
class PayloadIndex:
    """An index over a payload field: ``kind`` is keyword, integer, float or bool."""

    key: str
    kind: str


@dataclass
class Rerank:
    """How a search's hits are re-ordered by the reranker service.

    ``strategy``: rule, mmr, cross_encoder, feedback, ``"none"`` (turns a collection's
    default off) or ``""`` (the collection's default strategy).
    """

    strategy: str = ""
    query_text: Optional[str] = None
    params: Optional[Dict[str, Any]] = None
    candidates: int = 0


@dataclass
class CollectionConfig:
    """A collection's configuration, as the server holds it (defaults filled in)."""

    name: str
    dimension: int
    distance: Distance
    shard_count: int = 1
    replication_factor: int = 1
    hnsw: HnswConfig = field(default_factory=HnswConfig)
    payload_indexes: List[PayloadIndex] = field(default_factory=list)
    default_rerank: Optional[Rerank] = None


@dataclass
class CollectionInfo:
    """A collection's configuration and its point count."""

    config: CollectionConfig
    points_count: int

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class ReplicaStatus:
    worker_id: int
    worker_address: str
    #: ``"active"``, ``"catching_up"``, ``"unreachable"`` or ``"unspecified"``.
    state: str
    is_leader: bool


@dataclass
class ShardStatus:
    shard_id: int
    #: The shard owns hash(id) in [range_start, range_end); range_end 0 means 2**64.
    range_start: int
    range_end: int
    replicas: List[ReplicaStatus]
    points_count: int


@dataclass
class CollectionStatus:
    """Where a collection's shards and replicas are, at routing epoch ``epoch``."""

    config: CollectionConfig
    shards: List[ShardStatus]
    epoch: int


@dataclass
class PointFeedback:
    point_id: PointId
    count: int
    mean_relevance: float
    relevance_sum: float
    clicks: int


@dataclass
class FeedbackModel:
    version: str
    weights: List[float]
    examples: int
    train_queries: int
    held_out_queries: int
    ndcg_vector: float
    ndcg_model: float


@dataclass
class FeedbackStats:
    """What a collection's kept feedback adds up to."""

    count: int
    queries: int
    points: int
    mean_relevance: float
    positive: int
    negative: int
    clicked: int
    top_points: List[PointFeedback]
    model: Optional[FeedbackModel] = None


@dataclass
class TokenPair:
    """A login's tokens; the expiries are seconds since the Unix epoch."""

    access_token: str
    refresh_token: str
    access_expires_at: int
    refresh_expires_at: int
