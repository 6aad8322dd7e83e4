"""Typed errors.

Every error a Vectron server returns carries a stable code in the ``vectron-error-code``
gRPC metadata (the names of ``vectron.v1.ErrorCode``: ``DIMENSION_MISMATCH``,
``COLLECTION_NOT_FOUND`` …), a retry flag in ``vectron-retryable`` and, for rate limits
and throttles, ``retry-after`` in whole seconds (see the server's
``model/src/status.rs``). :func:`from_rpc_error` turns a failed call into the subclass
of :class:`VectronError` its code belongs to; a status without Vectron's metadata (a
transport failure, a proxy) is read from its gRPC status code, as the Rust SDK does.

Errors the client finds itself before sending (a malformed filter, a negative point id)
are the same classes with ``grpc_status`` ``None``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

import grpc

CODE_KEY = "vectron-error-code"
RETRYABLE_KEY = "vectron-retryable"
RETRY_AFTER_KEY = "retry-after"
LEADER_KEY = "vectron-leader"
LEADER_ADDR_KEY = "vectron-leader-addr"
EPOCH_KEY = "vectron-epoch"

__all__ = [
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
    "from_rpc_error",
]


class VectronError(Exception):
    """A failed call.

    Attributes:
        code: the server's error code name (``"DIMENSION_MISMATCH"``), or the one inferred
            from the gRPC status when the server sent none.
        message: the server's message.
        retryable: whether the server says a retry may succeed.
        retry_after: seconds the server asked to wait before a retry, if it said.
        grpc_status: the call's :class:`grpc.StatusCode`; ``None`` for errors the client
            raised before sending anything.
        leader: the leader node id a ``NOT_LEADER`` answer points at, when known.
        leader_address: that leader's address, when known.
        epoch: the routing epoch the server holds, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "INTERNAL",
        retryable: bool = False,
        retry_after: Optional[float] = None,
        grpc_status: Optional[grpc.StatusCode] = None,
        leader: Optional[int] = None,
        leader_address: Optional[str] = None,
        epoch: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.grpc_status = grpc_status
        self.leader = leader
        self.leader_address = leader_address
        self.epoch = epoch

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __repr__(self) -> str:
        extra = f", retry_after={self.retry_after}" if self.retry_after is not None else ""
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, retryable={self.retryable}{extra})"


def _rebuild(cls: Type[VectronError], message: str, state: Dict[str, Any]) -> VectronError:
    e = cls(message)
    e.__dict__.update(state)
    return e


class InvalidArgument(VectronError):
    """The request is malformed (``INVALID_ARGUMENT`` and the ``INVALID_*`` codes)."""


class DimensionMismatch(InvalidArgument):
    """A vector's length differs from the collection's dimension."""


class InvalidVector(InvalidArgument):
    """A vector holds NaN or an infinity, is empty, or is all zeros under cosine."""


class InvalidPayload(InvalidArgument):
    """A payload is not an object, is nested too deeply, is too large, or holds a value
    the wire cannot carry."""


class InvalidFilter(InvalidArgument):
    """A filter is malformed."""


class InvalidPointId(InvalidArgument):
    """A point id is not a non-negative 64-bit integer or a string of 1-256 characters."""


class NotFound(VectronError):
    """Something named does not exist (collection, point, user, key)."""


class CollectionNotFound(NotFound):
    """The collection does not exist."""


class PointNotFound(NotFound):
    """The point does not exist."""


class AlreadyExists(VectronError):
    """Something with that name already exists."""


class CollectionAlreadyExists(AlreadyExists):
    """A collection of that name already exists."""


class Unauthenticated(VectronError):
    """No, malformed, unknown or revoked credentials."""


class TokenExpired(Unauthenticated):
    """The access token has expired (a client holding a refresh token refreshes it)."""


class PermissionDenied(VectronError):
    """The credential's scope or collections do not allow the call."""


class ResourceExhausted(VectronError):
    """A limit was hit: a rate limit, or a message larger than the method accepts."""


class RateLimited(ResourceExhausted):
    """A rate limit was hit; ``retry_after`` says when a retry can succeed."""


class PayloadTooLarge(ResourceExhausted):
    """The request is larger than the method accepts (send smaller batches)."""


class Unavailable(VectronError):
    """A shard or service could not be reached, or has no leader yet (retryable)."""


class DeadlineExceeded(VectronError):
    """The call's deadline passed."""


class Aborted(VectronError):
    """Routing changed under the call (NOT_LEADER, STALE_EPOCH, SHARD_NOT_HOSTED) or a
    concurrent change won (CONFLICT); usually retryable."""


class FailedPrecondition(VectronError):
    """The cluster is not in a state that allows the operation."""


class Unimplemented(VectronError):
    """The server does not offer this (an older server, or an RPC not served there)."""


class InternalError(VectronError):
    """A server bug or a storage failure."""


_BY_CODE: Dict[str, Type[VectronError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "DIMENSION_MISMATCH": DimensionMismatch,
    "INVALID_VECTOR": InvalidVector,
    "INVALID_PAYLOAD": InvalidPayload,
    "INVALID_FILTER": InvalidFilter,
    "INVALID_POINT_ID": InvalidPointId,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
    "METHOD_NOT_ALLOWED": Unimplemented,
    "FAILED_PRECONDITION": FailedPrecondition,
    "COLLECTION_NOT_FOUND": CollectionNotFound,
    "COLLECTION_ALREADY_EXISTS": CollectionAlreadyExists,
    "POINT_NOT_FOUND": PointNotFound,
    "ALREADY_EXISTS": AlreadyExists,
    "NOT_FOUND": NotFound,
    "NOT_LEADER": Aborted,
    "STALE_EPOCH": Aborted,
    "SHARD_NOT_HOSTED": Aborted,
    "CONFLICT": Aborted,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "RESOURCE_EXHAUSTED": RateLimited,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "TOKEN_EXPIRED": TokenExpired,
    "STORAGE": InternalError,
    "INTERNAL": InternalError,
    "UNIMPLEMENTED": Unimplemented,
}

# A status without Vectron's metadata: the code its gRPC status stands for (as the
# server's own `from_status` reads one).
_BY_GRPC: Dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "INVALID_ARGUMENT",
    grpc.StatusCode.NOT_FOUND: "NOT_FOUND",
    grpc.StatusCode.ALREADY_EXISTS: "ALREADY_EXISTS",
    grpc.StatusCode.UNAUTHENTICATED: "UNAUTHENTICATED",
    grpc.StatusCode.PERMISSION_DENIED: "PERMISSION_DENIED",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
    grpc.StatusCode.UNAVAILABLE: "UNAVAILABLE",
    grpc.StatusCode.FAILED_PRECONDITION: "FAILED_PRECONDITION",
    grpc.StatusCode.OUT_OF_RANGE: "PAYLOAD_TOO_LARGE",
    grpc.StatusCode.UNIMPLEMENTED: "UNIMPLEMENTED",
    grpc.StatusCode.ABORTED: "CONFLICT",
    grpc.StatusCode.CANCELLED: "UNAVAILABLE",
}


def error_class(code: str) -> Type[VectronError]:
    """The exception class of a server error code (unknown codes: :class:`VectronError`)."""
    return _BY_CODE.get(code, VectronError)


def client_error(code: str, message: str) -> VectronError:
    """An error the client raises itself, before sending (``grpc_status`` is ``None``)."""
    return error_class(code)(message, code=code)


def _metadata(md: Any) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in md or ():
        key, value = (item.key, item.value) if hasattr(item, "key") else item
        if isinstance(key, bytes):
            key = key.decode("ascii", "replace")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[str(key).lower()] = str(value)
    return out


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def from_status(
    status: grpc.StatusCode, details: Optional[str], trailing_metadata: Any
) -> VectronError:
    """The typed error of a status code, its details and its trailing metadata."""
    md = _metadata(trailing_metadata)
    code = md.get(CODE_KEY) or _BY_GRPC.get(status, "INTERNAL")
    if RETRYABLE_KEY in md:
        retryable = md[RETRYABLE_KEY] == "true"
    else:
        retryable = status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    retry_after: Optional[float] = None
    if RETRY_AFTER_KEY in md:
        try:
            retry_after = float(md[RETRY_AFTER_KEY])
        except ValueError:
            retry_after = None
    cls = error_class(code)
    if CODE_KEY not in md and status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Not the server's rate limit (that carries the code): the transport's own
        # limit, such as a message larger than the channel accepts.
        cls = ResourceExhausted
    elif code not in _BY_CODE:
        # A code newer than this client: its family from the gRPC status.
        cls = error_class(_BY_GRPC.get(status, "INTERNAL"))
    return cls(
        details or status.name,
        code=code,
        retryable=retryable,
        retry_after=retry_after,
        grpc_status=status,
        leader=_int(md.get(LEADER_KEY)),
        leader_address=md.get(LEADER_ADDR_KEY),
        epoch=_int(md.get(EPOCH_KEY)),
    )


def from_rpc_error(e: grpc.RpcError) -> VectronError:
    """The typed error of a failed sync or asyncio call."""
    status = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else ()
    return from_status(status, details, trailing)
