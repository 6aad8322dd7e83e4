"""Credentials, scopes, rate limits and retries against a real `vectron dev` (auth on)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, List, Tuple

import grpc
import pytest

import vectron
from conftest import ACCESS_TTL_SECS, Server, free_ports
from vectron import AsyncClient, Client, RetryPolicy


def test_read_key_may_search_but_not_upsert(server: Server, client: Client, new_collection) -> None:
    name = new_collection(dimension=2)
    client.upsert(name, [{"id": 1, "vector": [1.0, 0.0]}])
    key = server.create_key("read", [name])
    with Client(server.grpc, api_key=key) as reader:
        assert reader.count(name) == 1
        assert reader.search(name, [1.0, 0.0], top_k=1).ids == [1]
        assert [p.id for p in reader.scroll(name)] == [1]
        for write in (
            lambda: reader.upsert(name, [{"id": 2, "vector": [0.0, 1.0]}]),
            lambda: reader.delete(name, ids=[1]),
            lambda: reader.delete_collection(name),
        ):
            with pytest.raises(vectron.PermissionDenied) as e:
                write()
            assert e.value.code == "PERMISSION_DENIED" and e.value.grpc_status == grpc.StatusCode.PERMISSION_DENIED
            assert not e.value.retryable
    assert client.count(name) == 1, "nothing was written"


def test_key_limited_to_another_collection_is_denied(server: Server, client: Client, new_collection) -> None:
    mine, other = new_collection(dimension=2), new_collection(dimension=2)
    key = server.create_key("write", [mine])
    with Client(server.grpc, api_key=key) as c:
        c.upsert(mine, [{"id": 1, "vector": [1.0, 0.0]}])
        with pytest.raises(vectron.PermissionDenied):
            c.upsert(other, [{"id": 1, "vector": [1.0, 0.0]}])
        with pytest.raises(vectron.PermissionDenied):
            c.search(other, [1.0, 0.0])
    assert client.count(mine) == 1 and client.count(other) == 0


def test_missing_or_wrong_credentials_are_unauthenticated(server: Server) -> None:
    bad_key = "vx_0000000000000000_" + "0" * 64
    for c in (Client(server.grpc), Client(server.grpc, api_key=bad_key), Client(server.grpc, token="not.a.jwt")):
        with c, pytest.raises(vectron.Unauthenticated) as e:
            c.list_collections()
        assert e.value.code == "UNAUTHENTICATED" and e.value.grpc_status == grpc.StatusCode.UNAUTHENTICATED
        assert not isinstance(e.value, vectron.TokenExpired)


def test_rate_limit_is_rate_limited_with_retry_after(server: Server, client: Client, new_collection) -> None:
    name = new_collection(dimension=2)
    key = server.create_key("read", [name], rate_limit_per_sec=1)
    with Client(server.grpc, api_key=key, retries=0) as c:
        with pytest.raises(vectron.RateLimited) as e:
            for _ in range(5):
                c.count(name)
    err = e.value
    assert isinstance(err, vectron.ResourceExhausted)
    assert err.code == "RESOURCE_EXHAUSTED" and err.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.retryable and err.retry_after is not None and 1 <= err.retry_after <= 2


def test_retries_wait_out_a_rate_limit(server: Server, client: Client, new_collection) -> None:
    name = new_collection(dimension=2)
    key = server.create_key("read", [name], rate_limit_per_sec=2)
    retried: List[Tuple[str, int, float]] = []
    policy = RetryPolicy(max_retries=5, on_retry=lambda e, n, d: retried.append((e.code, n, d)))
    started = time.monotonic()
    with Client(server.grpc, api_key=key, retries=policy) as c:
        assert [c.count(name) for _ in range(6)] == [0] * 6
    elapsed = time.monotonic() - started
    assert retried and all(code == "RESOURCE_EXHAUSTED" and d >= 1.0 for code, _, d in retried)
    assert elapsed >= 1.0, "the retries waited for the server's retry-after"


def test_unreachable_gateway_is_unavailable_retried_only_when_safe() -> None:
    (port,) = free_ports(1)
    with socket.socket() as s:  # nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0
    retried: List[str] = []
    policy = RetryPolicy(max_retries=2, initial_backoff=0.01, on_retry=lambda e, n, d: retried.append(e.code))
    with Client(f"http://127.0.0.1:{port}", api_key="k", retries=policy, timeout=5) as c:
        with pytest.raises(vectron.Unavailable) as e:
            c.count("x")
        assert e.value.retryable and e.value.grpc_status == grpc.StatusCode.UNAVAILABLE
        assert retried == ["UNAVAILABLE", "UNAVAILABLE"], "an idempotent read is retried"
        retried.clear()
        with pytest.raises(vectron.Unavailable):
            c.upsert("x", [{"id": 1, "vector": [1.0]}])
        assert len(retried) == 2, "an upsert is idempotent by id"
        retried.clear()
        with pytest.raises(vectron.Unavailable):
            c.create_collection("x", 4)
        assert retried == [], "creating a collection is not repeated after an unknown outcome"
        with pytest.raises(vectron.Unavailable):
            c.delete_collection("x")
        assert retried == []


def test_login_refreshes_an_expired_access_token(server: Server, new_collection) -> None:
    """Needs vectron.v1.AuthService on the gateway's gRPC port."""
    name = new_collection(dimension=2)
    with pytest.raises(vectron.Unauthenticated):
        Client.login(server.grpc, "admin", "not the password")
    with Client.login(server.grpc, "admin", server.admin_password) as c:
        tokens = c.tokens
        assert tokens is not None and c.token == tokens.access_token
        assert tokens.access_expires_at <= time.time() + ACCESS_TTL_SECS + 5
        assert c.count(name) == 0
        # Past the access token's expiry (and the gateway's 2 s credential cache).
        time.sleep(max(0.0, tokens.access_expires_at - time.time()) + 2.5)
        assert c.count(name) == 0, "refreshed and repeated"
        assert c.tokens is not None and c.token != tokens.access_token
        assert c.tokens.refresh_token != tokens.refresh_token
        c.logout()


def test_async_login(server: Server) -> None:
    """Needs vectron.v1.AuthService on the gateway's gRPC port."""

    async def main() -> Any:
        c = await AsyncClient.login(server.grpc, "admin", server.admin_password)
        async with c:
            assert c.token
            return await c.list_collections()

    assert isinstance(asyncio.run(main()), list)
