"""Python client for Vectron, a distributed vector database.

>>> from vectron import Client
>>> with Client("127.0.0.1:8081", api_key=key) as client:
...     client.create_collection("docs", dimension=4)
...     client.upsert("docs", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4], "payload": {"city": "London"}}])
...     hits = client.search("docs", [0.1, 0.2, 0.3, 0.4], top_k=5, with_payload=True).hits

:class:`Client` is synchronous, :class:`AsyncClient` (``vectron.aio``) its asyncio twin;
errors are :class:`VectronError` subclasses (``vectron.errors``).
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    Aborted,
    AlreadyExists,
    CollectionAlreadyExists,
    CollectionNotFound,
    DeadlineExceeded,
    DimensionMismatch,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    InvalidFilter,
    InvalidPayload,
    InvalidPointId,
    InvalidVector,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PointNotFound,
    RateLimited,
    ResourceExhausted,
    TokenExpired,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    VectronError,
)
from .types import (  # noqa: E402
    CollectionConfig,
    CollectionInfo,
    CollectionStatus,
    FeedbackModel,
    FeedbackStats,
    HnswConfig,
    PayloadIndex,
    PointFeedback,
    Record,
    ReplicaStatus,
    Rerank,
    ScoredPoint,
    SearchQuery,
    SearchResult,
    ShardStatus,
    TokenPair,
    UpsertResult,
)
from ._retry import RetryPolicy  # noqa: E402
from .client import Client  # noqa: E402
from .aio import AsyncClient  # noqa: E402

__all__ = [
    "Client",
    "AsyncClient",
    "RetryPolicy",
    "VectronError",
    "InvalidArgument",
    "DimensionMismatch",
    "InvalidVector",
    "InvalidPayload",
    "InvalidFilter",
    "InvalidPointId",
    "NotFound",
    "CollectionNotFound",
    "PointNotFound",
    "AlreadyExists",
    "CollectionAlreadyExists",
    "Unauthenticated",
    "TokenExpired",
    "PermissionDenied",
    "ResourceExhausted",
    "RateLimited",
    "PayloadTooLarge",
    "Unavailable",
    "DeadlineExceeded",
    "Aborted",
    "FailedPrecondition",
    "Unimplemented",
    "InternalError",
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
    "__version__",
]
