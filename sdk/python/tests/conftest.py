"""Fixtures: one real `vectron dev` (auth on) for the whole session, on free loopback
ports, its data in a temporary directory; stopped with SIGTERM (SIGKILL after a
timeout) at the end.

Environment:
    VECTRON_BIN            the server binary [${CARGO_TARGET_DIR:-~/.cache/vectron/target}/debug/vectron]
    VECTRON_PY_DATA_ROOT   where the server's data dir is made [pytest's tmp dir]; e.g.
                           /dev/shm to keep the 100k-point run off a nearly full disk
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import vectron
from vectron import Client

# Access tokens live this long on the test server, so the login test sees one expire.
ACCESS_TTL_SECS = 3
STARTUP_TIMEOUT_SECS = 90
STOP_TIMEOUT_SECS = 20
PASSWORD_LINE = re.compile(r'Created admin user "admin" with password (\S+) \(shown once; change it\)')


def binary() -> Path:
    if os.environ.get("VECTRON_BIN"):
        return Path(os.environ["VECTRON_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/vectron/target")
    return Path(target) / "debug" / "vectron"


def free_ports(n: int) -> List[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Server:
    http: str
    grpc: str
    auth_port: int
    data_dir: Path
    log_path: Path
    admin_key: str = field(repr=False)
    admin_password: str = field(repr=False)
    proc: subprocess.Popen = field(repr=False)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def http_json(self, method: str, path: str, body: Any = None, key: Optional[str] = None) -> Tuple[int, Any]:
        """An HTTP call to the gateway's /v1 API: (status, decoded JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.http}{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        req.add_header("x-api-key", key or self.admin_key)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def create_key(self, scope: str, collections: Optional[List[str]] = None, rate_limit_per_sec: int = 0) -> str:
        """A new API key's secret (`POST /v1/auth/keys` with the admin key)."""
        body: Dict[str, Any] = {"scope": scope, "collections": collections or []}
        if rate_limit_per_sec:
            body["rate_limit_per_sec"] = rate_limit_per_sec
        status, answer = self.http_json("POST", "/v1/auth/keys", body)
        assert status == 200, (status, answer)
        return str(answer["secret_key"])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_SECS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_SECS)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bin = binary()
    if not os.access(bin, os.X_OK):
        pytest.fail(f"no vectron binary at {bin} (cargo build -p vectron-server, or set VECTRON_BIN)", pytrace=False)
    tmp = tmp_path_factory.mktemp("vectron-dev")
    log_path = tmp / "server.log"
    root = os.environ.get("VECTRON_PY_DATA_ROOT")
    data = Path(tempfile.mkdtemp(prefix="vectron-py-", dir=root)) / "data" if root else tmp / "data"
    http, grpc_port, placement, worker, auth, reranker = free_ports(6)
    env = dict(os.environ, NO_COLOR="1", VECTRON__AUTH__ACCESS_TTL=f"{ACCESS_TTL_SECS}s")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(bin), "dev", "--data-dir", str(data),
             "--http", f"127.0.0.1:{http}", "--grpc", f"127.0.0.1:{grpc_port}",
             "--placement", f"127.0.0.1:{placement}", "--worker", f"127.0.0.1:{worker}",
             "--auth", f"127.0.0.1:{auth}", "--reranker", f"127.0.0.1:{reranker}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    try:
        srv = _wait_until_serving(proc, data, log_path, http, grpc_port, auth)
        yield srv
    finally:
        _stop(proc)
        # The log stays, for a failed run; the data goes (the 100k run's is ~130 MB).
        shutil.rmtree(data.parent if root else data, ignore_errors=True)


def _wait_until_serving(
    proc: subprocess.Popen, data: Path, log_path: Path, http: int, grpc_port: int, auth: int
) -> Server:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECS
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vectron dev exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        key_file = data / "admin.key"
        m = PASSWORD_LINE.search(log_path.read_text(errors="replace"))
        if key_file.exists() and m:
            key = key_file.read_text().strip()
            try:
                with Client(f"127.0.0.1:{grpc_port}", api_key=key, timeout=5, retries=0) as c:
                    c.list_collections()
                return Server(
                    http=f"http://127.0.0.1:{http}",
                    grpc=f"127.0.0.1:{grpc_port}",
                    auth_port=auth,
                    data_dir=data,
                    log_path=log_path,
                    admin_key=key,
                    admin_password=m.group(1),
                    proc=proc,
                )
            except vectron.VectronError as e:
                last = e
        time.sleep(0.2)
    raise RuntimeError(f"vectron dev did not serve in {STARTUP_TIMEOUT_SECS}s (last: {last!r}):\n{log_path.read_text()}")


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[Client]:
    with Client(server.grpc, api_key=server.admin_key, timeout=60) as c:
        yield c


@pytest.fixture
def new_collection(client: Client) -> Iterator[Any]:
    """Creates uniquely named collections (same arguments as create_collection) and
    deletes them after the test."""
    made: List[str] = []

    def make(prefix: str = "t", dimension: int = 4, **kwargs: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        client.create_collection(name, dimension, **kwargs)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            client.delete_collection(name)
        except vectron.NotFound:
            pass


# ---- the run's figures, printed at the end of the run (whatever the capture mode) ----

REPORT: List[str] = []


@pytest.fixture(scope="session")
def report() -> List[str]:
    return REPORT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("vectron python-sdk figures")
        for line in REPORT:
            terminalreporter.write_line(line)
