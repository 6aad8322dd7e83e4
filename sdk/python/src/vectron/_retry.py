"""Retry policy and credentials, shared by the sync and asyncio clients.

A call is retried when the server marks its error retryable (``vectron-retryable:
true``, or a transport failure: UNAVAILABLE / DEADLINE_EXCEEDED without Vectron's
metadata), with exponential backoff and jitter, waiting at least the server's
``retry-after``. A call that is not idempotent (creating or deleting a collection, a
token refresh) is retried only on errors that say it was refused before anything
happened (rate limits, routing redirects): an UNAVAILABLE or a deadline leaves its
outcome unknown, and repeating it could fail misleadingly or, for a refresh, revoke the
whole token family. Upserts and deletes by id are idempotent (the README: "retrying
the whole request is safe: writes are idempotent by id"), and so are reads and feedback
(a judgement sent again replaces itself).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import grpc

from .errors import VectronError
from .types import TokenPair

# Errors that mean the request was refused before it was applied: safe to repeat even
# when the call is not idempotent.
NOT_APPLIED = frozenset({"RESOURCE_EXHAUSTED", "NOT_LEADER", "STALE_EPOCH", "SHARD_NOT_HOSTED"})

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"


@dataclass(frozen=True)
class Call:
    """One unary RPC: ``service`` ("vectron" or "auth"), the stub's method name and its
    request; ``idempotent`` says whether repeating it after an unknown outcome is safe;
    ``authenticated`` whether it carries the client's credential."""

    service: str
    method: str
    request: Any
    idempotent: bool = True
    authenticated: bool = True


@dataclass
class RetryPolicy:
    """How retryable errors are retried.

    Attributes:
        max_retries: retries after the first attempt (0: never retry).
        initial_backoff: the first wait, in seconds; each retry multiplies it by
            ``multiplier`` up to ``max_backoff``.
        jitter: the share of each wait drawn at random (0: none, 1: full jitter).
        max_retry_after: a server asking to wait longer than this (seconds) is not
            retried; the error (with its ``retry_after``) is raised instead.
        on_retry: called as ``on_retry(error, attempt, delay)`` before each retry.
    """

    max_retries: int = 3
    initial_backoff: float = 0.05
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_retry_after: float = 60.0
    on_retry: Optional[Callable[[VectronError, int, float], None]] = None

    @classmethod
    def of(cls, retries: "int | RetryPolicy | None") -> "RetryPolicy":
        if retries is None:
            return cls(max_retries=0)
        if isinstance(retries, RetryPolicy):
            return retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries is a non-negative int or a RetryPolicy, got {retries!r}")
        return cls(max_retries=retries)

    def may_retry(self, call: Call, error: VectronError) -> bool:
        """Whether `error` allows repeating `call` at all."""
        if not error.retryable:
            return False
        return call.idempotent or error.code in NOT_APPLIED

    def delay(self, call: Call, error: VectronError, attempt: int) -> Optional[float]:
        """Seconds to wait before retry number ``attempt + 1``, or ``None`` to give up."""
        if attempt >= self.max_retries or not self.may_retry(call, error):
            return None
        backoff = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        wait = backoff * (1.0 - self.jitter * random.random())
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            # At least what the server asked, spread a little so clients that were
            # refused together do not come back together.
            wait = max(wait, error.retry_after + random.uniform(0.0, min(0.25, 0.1 * error.retry_after)))
        if self.on_retry is not None:
            self.on_retry(error, attempt + 1, wait)
        return wait


class Session:
    """The credential a client sends: an API key, or a bearer token with (after a
    login) its refresh token. ``generation`` counts token changes, so concurrent callers
    that all saw an expired token refresh it once."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        token: Optional[str] = None,
        tokens: Optional[TokenPair] = None,
    ) -> None:
        if api_key is not None and (token is not None or tokens is not None):
            raise ValueError("pass an api_key or a token, not both")
        self.api_key = api_key
        self.tokens = tokens
        self.token = tokens.access_token if tokens is not None else token
        self.generation = 0
        self._metadata = self._build()

    def _build(self) -> Tuple[Tuple[str, str], ...]:
        if self.api_key is not None:
            return ((API_KEY_HEADER, self.api_key),)
        if self.token is not None:
            return ((AUTHORIZATION_HEADER, f"Bearer {self.token}"),)
        return ()

    def metadata(self, call: Optional[Call] = None) -> Tuple[Tuple[str, str], ...]:
        if call is not None and not call.authenticated:
            return ()
        return self._metadata

    def set_tokens(self, tokens: TokenPair) -> None:
        self.tokens = tokens
        self.token = tokens.access_token
        self.generation += 1
        self._metadata = self._build()

    def should_refresh(self, call: Call, error: VectronError) -> bool:
        """An authenticated call refused for an expired access token, with a refresh
        token at hand."""
        if not call.authenticated or self.tokens is None or not self.tokens.refresh_token:
            return False
        if error.grpc_status != grpc.StatusCode.UNAUTHENTICATED:
            return False
        expired = self.tokens.access_expires_at and self.tokens.access_expires_at <= time.time()
        return error.code == "TOKEN_EXPIRED" or bool(expired)

    def refresh_call(self) -> Call:
        from ._proto.vectron.v1 import auth_pb2 as apb

        assert self.tokens is not None
        return Call(
            "auth",
            "Refresh",
            apb.RefreshRequest(refresh_token=self.tokens.refresh_token),
            idempotent=False,
            authenticated=False,
        )
