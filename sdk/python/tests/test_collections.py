"""Collections against a real `vectron dev`."""

from __future__ import annotations

import uuid

import grpc
import pytest

import vectron
from vectron import Client


def test_create_get_list_status_delete(client: Client) -> None:
    name = f"c-{uuid.uuid4().hex[:10]}"
    config = client.create_collection(
        name,
        dimension=8,
        distance="euclid",
        shard_count=3,
        replication_factor=1,
        hnsw={"m": 12, "ef_construction": 100},
        payload_indexes=[{"key": "city", "kind": "keyword"}, ("n", "integer"), vectron.PayloadIndex("p", "float")],
        default_rerank={"strategy": "rule", "params": {"text_fields": ["title"]}},
    )
    try:
        assert (config.name, config.dimension, config.distance, config.shard_count) == (name, 8, "euclid", 3)
        assert (config.hnsw.m, config.hnsw.ef_construction) == (12, 100)
        assert [(p.key, p.kind) for p in config.payload_indexes] == [("city", "keyword"), ("n", "integer"), ("p", "float")]
        assert config.default_rerank is not None and config.default_rerank.strategy == "rule"
        assert config.default_rerank.params == {"text_fields": ["title"]}

        info = client.get_collection(name)
        assert info.config == config and info.points_count == 0 and info.name == name
        assert name in [c.name for c in client.list_collections()]
        assert client.collection_exists(name)

        status = client.collection_status(name)
        assert status.config == config and status.epoch > 0
        assert len(status.shards) == 3
        # The shards cover the whole hash space, each with one leading replica.
        ranges = sorted((s.range_start, s.range_end) for s in status.shards)
        assert ranges[0][0] == 0 and ranges[-1][1] == 0
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        for s in status.shards:
            assert len(s.replicas) == 1 and s.replicas[0].is_leader and s.replicas[0].state == "active"
    finally:
        client.delete_collection(name)
    assert not client.collection_exists(name)
    with pytest.raises(vectron.CollectionNotFound):
        client.get_collection(name)


def test_defaults_are_filled_in(client: Client, new_collection) -> None:
    name = new_collection(dimension=3)
    c = client.get_collection(name).config
    assert (c.distance, c.shard_count, c.replication_factor, c.hnsw.m, c.hnsw.ef_construction) == ("cosine", 1, 1, 16, 200)
    assert c.payload_indexes == [] and c.default_rerank is None


def test_creating_an_existing_collection_is_already_exists(client: Client, new_collection) -> None:
    name = new_collection()
    with pytest.raises(vectron.CollectionAlreadyExists) as e:
        client.create_collection(name, 4)
    assert isinstance(e.value, vectron.AlreadyExists)
    assert e.value.code == "COLLECTION_ALREADY_EXISTS" and e.value.grpc_status == grpc.StatusCode.ALREADY_EXISTS


def test_unknown_collection_is_not_found_everywhere(client: Client) -> None:
    name = f"missing-{uuid.uuid4().hex[:8]}"
    calls = [
        lambda: client.get_collection(name),
        lambda: client.collection_status(name),
        lambda: client.delete_collection(name),
        lambda: client.upsert(name, [{"id": 1, "vector": [1.0, 0.0]}]),
        lambda: client.get(name, [1]),
        lambda: client.count(name),
        lambda: list(client.scroll(name)),
        lambda: client.search(name, [1.0, 0.0]),
        lambda: client.delete(name, ids=[1]),
    ]
    for call in calls:
        with pytest.raises(vectron.NotFound) as e:
            call()
        assert e.value.code == "COLLECTION_NOT_FOUND", e.value
        assert isinstance(e.value, vectron.CollectionNotFound) and e.value.grpc_status == grpc.StatusCode.NOT_FOUND
        assert not e.value.retryable and name in e.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "bad name!", "dimension": 4},
        {"name": "x" * 65, "dimension": 4},
        {"name": "ok-name", "dimension": 4, "hnsw": {"m": 1}},
        {"name": "ok-name", "dimension": 4, "shard_count": 1000},
    ],
)
def test_invalid_collections_are_invalid_argument(client: Client, kwargs: dict) -> None:
    with pytest.raises(vectron.InvalidArgument) as e:
        client.create_collection(**kwargs)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.grpc_status == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_arguments_are_refused_before_sending(client: Client) -> None:
    for kwargs in ({"distance": "manhattan"}, {"dimension": 0}, {"payload_indexes": [("k", "geo")]}, {"hnsw": {"M": 3}}):
        args = {"name": "never-created", "dimension": 4, **kwargs}
        with pytest.raises(vectron.InvalidArgument) as e:
            client.create_collection(**args)
        assert e.value.grpc_status is None, kwargs
    assert not client.collection_exists("never-created")
