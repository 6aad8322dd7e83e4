"""TLS: a ``vectron dev --tls`` server (its own, without auth) answers a client that
trusts its CA (``ca_file``), sync and async, and refuses one that trusts only the
system's roots; a CA file with a plaintext URL is a usage error."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import vectron
from conftest import STARTUP_TIMEOUT_SECS, _stop, binary, free_ports
from vectron import AsyncClient, Client


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("vectron-tls")
    data = tmp / "data"
    http, grpc_port, placement, worker, auth, reranker = free_ports(6)
    with open(tmp / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [str(binary()), "dev", "--tls", "--no-auth", "--data-dir", str(data),
             "--http", f"127.0.0.1:{http}", "--grpc", f"127.0.0.1:{grpc_port}",
             "--placement", f"127.0.0.1:{placement}", "--worker", f"127.0.0.1:{worker}",
             "--auth", f"127.0.0.1:{auth}", "--reranker", f"127.0.0.1:{reranker}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url, ca = f"https://127.0.0.1:{grpc_port}", data / "tls" / "ca.crt"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECS
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text(errors="replace")
            if ca.exists():
                try:
                    with Client(url, ca_file=str(ca), timeout=5, retries=0) as c:
                        c.list_collections()
                    break
                except vectron.VectronError:
                    pass
            assert time.monotonic() < deadline, (tmp / "server.log").read_text(errors="replace")
            time.sleep(0.2)
        yield url, ca
    finally:
        _stop(proc)


def test_a_client_trusting_the_ca_is_served(tls_server: Tuple[str, Path]) -> None:
    url, ca = tls_server
    with Client(url, ca_file=str(ca), timeout=10) as c:
        c.create_collection("tls_sync", dimension=2)
        c.upsert("tls_sync", [{"id": 1, "vector": [0.5, 0.5], "payload": {"over": "tls"}}], wait=True)
        hits = c.search("tls_sync", [0.5, 0.5], top_k=1, with_payload=True)
        assert [(h.id, h.payload) for h in hits] == [(1, {"over": "tls"})]

    async def run() -> int:
        async with AsyncClient(url, ca_file=str(ca), timeout=10) as a:
            return await a.count("tls_sync")

    assert asyncio.run(run()) == 1


def test_a_client_without_the_ca_is_refused(tls_server: Tuple[str, Path]) -> None:
    url, _ = tls_server
    with Client(url, timeout=5, retries=0) as c:
        with pytest.raises(vectron.VectronError) as e:
            c.list_collections()
    assert e.value.code == "UNAVAILABLE"


def test_a_ca_file_needs_an_https_url(tls_server: Tuple[str, Path]) -> None:
    _, ca = tls_server
    with pytest.raises(ValueError, match="https"):
        Client("127.0.0.1:1", ca_file=str(ca))
