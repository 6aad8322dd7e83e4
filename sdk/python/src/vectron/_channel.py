"""Channel settings and parameter plumbing shared by both clients."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import grpc

from . import __version__

# The gateway answers messages up to 128 MiB (a big get or scroll page with vectors).
MAX_MESSAGE_BYTES = 128 * 1024 * 1024


def channel_options(extra: Optional[Sequence[Tuple[str, Any]]] = None) -> List[Tuple[str, Any]]:
    """gRPC channel options: message limits, keepalive, user agent; ``extra`` wins."""
    opts: Dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.primary_user_agent": f"vectron-client-python/{__version__}",
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
    }
    for k, v in extra or ():
        opts[k] = v
    return list(opts.items())


def tls_credentials(secure: bool, ca_file: Optional[str]) -> Optional[grpc.ChannelCredentials]:
    """The channel's TLS credentials: ``None`` for a plaintext URL; the system's roots,
    or only the CA certificate(s) in ``ca_file`` (PEM), for an ``https://`` one."""
    if not secure:
        if ca_file is not None:
            raise ValueError("ca_file is for https:// URLs (TLS)")
        return None
    roots = None
    if ca_file is not None:
        with open(ca_file, "rb") as f:
            roots = f.read()
    return grpc.ssl_channel_credentials(root_certificates=roots)


def query_defaults(
    top_k: int,
    filter: Any,
    ef: Optional[int],
    score_threshold: Optional[float],
    with_payload: bool,
    with_vector: bool,
    consistency: Optional[str],
    timeout: Optional[float],
    rerank: Any,
) -> Dict[str, Any]:
    """A search's parameters but its vector, as :class:`~vectron.types.SearchQuery` fields."""
    return {
        "top_k": top_k,
        "filter": filter,
        "ef": ef,
        "score_threshold": score_threshold,
        "with_payload": with_payload,
        "with_vector": with_vector,
        "consistency": consistency,
        "timeout": timeout,
        "rerank": rerank,
    }
