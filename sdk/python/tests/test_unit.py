"""Conversions, errors and the retry policy, without a server."""

from __future__ import annotations

import pickle

import grpc
import numpy as np
import pytest

import vectron
from vectron import _convert as cv
from vectron import errors
from vectron._proto.vectron.v1 import common_pb2 as cpb
from vectron._proto.vectron.v1 import vectron_pb2 as vpb
from vectron._retry import Call, RetryPolicy, Session
from vectron.types import TokenPair


def test_generated_stubs_are_package_relative() -> None:
    import vectron._proto.vectron.v1.vectron_pb2_grpc as g

    assert g.__name__.startswith("vectron._proto.")
    assert hasattr(g, "VectronServiceStub")
    # The messages import their siblings relatively: the common messages are the same
    # classes wherever they are reached from.
    assert vpb.Point().id.__class__ is cpb.PointId


def test_payload_round_trip_keeps_ints_floats_bools_and_nesting() -> None:
    payload = {
        "i": 2**62 + 1,
        "neg": -(2**63),
        "f": 1.5,
        "whole": 3.0,
        "s": "straße ✓",
        "b": True,
        "n": None,
        "a": [1, "two", [3.25, False], {"k": -7}],
        "o": {"deep": {"k": -7, "e": {}}, "empty": []},
        "np": np.int64(5),
        "npf": np.float32(0.5),
        "npb": np.bool_(True),
        "arr": np.array([1, 2, 3]),
    }
    back = cv.struct_from_pb(cv.struct_to_pb(payload))
    expected = dict(payload, np=5, npf=0.5, npb=True, arr=[1, 2, 3])
    assert back == expected
    # Types, not only values (True == 1 and 3.0 == 3 in Python).
    for k in ("i", "neg", "np"):
        assert type(back[k]) is int, k
    for k in ("f", "whole", "npf"):
        assert type(back[k]) is float, k
    assert type(back["b"]) is bool and type(back["npb"]) is bool
    s = cv.struct_to_pb({"b": True, "i": 1, "f": 1.0})
    assert s.fields["b"].WhichOneof("kind") == "bool_value"
    assert s.fields["i"].WhichOneof("kind") == "integer_value"
    assert s.fields["f"].WhichOneof("kind") == "double_value"


@pytest.mark.parametrize(
    "bad",
    [{"big": 2**63}, {"neg": -(2**63) - 1}, {"set": {1, 2}}, {"bytes": b"x"}, {1: "non-string key"}, {"o": object()}],
)
def test_payloads_the_wire_cannot_carry_are_refused_before_sending(bad: dict) -> None:
    with pytest.raises(vectron.InvalidPayload) as e:
        cv.payload_to_pb(bad)
    assert e.value.code == "INVALID_PAYLOAD" and e.value.grpc_status is None


def test_point_ids() -> None:
    assert cv.point_id_to_pb(0) == cpb.PointId(num=0)
    assert cv.point_id_to_pb(2**64 - 1) == cpb.PointId(num=2**64 - 1)
    assert cv.point_id_to_pb(np.uint64(7)) == cpb.PointId(num=7)
    assert cv.point_id_to_pb("7") == cpb.PointId(str="7")
    assert cv.point_id_to_pb("é" * 256).str == "é" * 256
    for id in (cpb.PointId(num=9), cpb.PointId(str="x")):
        assert cv.point_id_to_pb(cv.point_id_from_pb(id)) == id
    for bad in (-1, 2**64, "", "x" * 257, True, 1.0, None, b"7"):
        with pytest.raises(vectron.InvalidPointId):
            cv.point_id_to_pb(bad)


def test_every_filter_condition_converts_as_the_server_reads_it() -> None:
    f = {
        "must": [
            {"key": "city", "match": {"value": "London"}},
            {"key": "price", "range": {"gte": 10, "lt": 100.5}},
            {"exists": {"key": "owner"}},
            {"key": "n", "match": {"value": 7.0}},
        ],
        "should": [
            {"key": "tags", "match": {"any": ["new", 3, True]}},
            {"has_id": [1, "a"]},
            {"key": "ok", "match": {"value": False}},
        ],
        "must_not": [{"is_null": {"key": "x"}}, {"must": [{"key": "k", "match": {"value": 5}}]}, {}],
    }
    F, C, FC, V = cpb.Filter, cpb.Condition, cpb.FieldCondition, cpb.Value
    expected = F(
        must=[
            C(field=FC(key="city", match=V(string_value="London"))),
            C(field=FC(key="price", range=cpb.Range(gte=10.0, lt=100.5))),
            C(field=FC(key="owner", exists=True)),
            C(field=FC(key="n", match=V(integer_value=7))),
        ],
        should=[
            C(
                field=FC(
                    key="tags",
                    match_any=cpb.ListValue(values=[V(string_value="new"), V(integer_value=3), V(bool_value=True)]),
                )
            ),
            C(has_id=cpb.HasIdCondition(ids=[cpb.PointId(num=1), cpb.PointId(str="a")])),
            C(field=FC(key="ok", match=V(bool_value=False))),
        ],
        must_not=[
            C(field=FC(key="x", is_null=True)),
            C(filter=F(must=[C(field=FC(key="k", match=V(integer_value=5)))])),
            C(filter=F()),
        ],
    )
    got = cv.filter_to_pb(f)
    assert got == expected
    assert not got.must[1].field.range.HasField("gt"), "absent bounds stay absent"
    assert cv.filter_to_pb(expected) is expected, "a proto filter passes as is"


@pytest.mark.parametrize(
    "bad",
    [
        {"must": [{"key": "a", "range": {}}]},
        {"must": [{"key": "a"}]},
        {"must": [{"key": "a", "match": {"value": 1.5}}]},
        {"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}}]},
        {"must": [{"key": "a", "frobnicate": 1}]},
        {"mustt": []},
        {"must": [{"has_id": [""]}]},
        {"must": [{"has_id": [-1]}]},
        [1, 2],
        {"must": [[]]},
        {"must": {"key": "a", "match": {"value": 1}}},
        {"must": [{"key": "a", "match": ["London"]}]},
        {"must": [{"key": "a", "match": {"value": 1, "any": [1]}}]},
        {"must": [{"key": "a", "range": [1, 2]}]},
        {"must": [{"key": "a", "range": {"gt": None}}]},
        {"must": [{"key": "a", "range": {"between": 1}}]},
        {"must": [{"exists": ["a"]}]},
        {"must": [{"exists": {"key": "a"}, "key": "b"}]},
        {"should": [{"must": [[]]}]},
        {"must": [{"key": 3, "match": {"value": 1}}]},
        {"must": [{"key": "a", "match": {"value": None}}]},
        {"must": [{"key": "a", "match": {"value": 2**63}}]},
    ],
)
def test_malformed_filters_are_invalid_filter(bad: object) -> None:
    with pytest.raises(vectron.InvalidFilter) as e:
        cv.filter_to_pb(bad)
    assert e.value.code == "INVALID_FILTER"


def test_errors_read_the_servers_metadata() -> None:
    md = (("vectron-error-code", "RESOURCE_EXHAUSTED"), ("vectron-retryable", "true"), ("retry-after", "2"))
    e = errors.from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit of key:x exceeded", md)
    assert isinstance(e, vectron.RateLimited) and isinstance(e, vectron.ResourceExhausted)
    assert (e.code, e.retryable, e.retry_after, e.grpc_status) == (
        "RESOURCE_EXHAUSTED", True, 2.0, grpc.StatusCode.RESOURCE_EXHAUSTED)  # fmt: skip
    md = (("vectron-error-code", "NOT_LEADER"), ("vectron-retryable", "true"), ("vectron-leader", "3"),
          ("vectron-leader-addr", "127.0.0.1:9090"), ("vectron-epoch", "12"))  # fmt: skip
    e = errors.from_status(grpc.StatusCode.ABORTED, "not the leader", md)
    assert isinstance(e, vectron.Aborted) and (e.leader, e.leader_address, e.epoch) == (3, "127.0.0.1:9090", 12)
    e = errors.from_status(grpc.StatusCode.INVALID_ARGUMENT, "3 vs 4", (("vectron-error-code", "DIMENSION_MISMATCH"),))
    assert isinstance(e, vectron.DimensionMismatch) and isinstance(e, vectron.InvalidArgument)
    assert not e.retryable and str(e) == "DIMENSION_MISMATCH: 3 vs 4"
    # PAYLOAD_TOO_LARGE travels as RESOURCE_EXHAUSTED too: the code decides the class.
    e = errors.from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "big", (("vectron-error-code", "PAYLOAD_TOO_LARGE"),))
    assert isinstance(e, vectron.PayloadTooLarge) and not isinstance(e, vectron.RateLimited)
    # Without Vectron's metadata: inferred from the status, as the server's from_status.
    e = errors.from_status(grpc.StatusCode.UNAVAILABLE, "connection refused", ())
    assert isinstance(e, vectron.Unavailable) and (e.code, e.retryable) == ("UNAVAILABLE", True)
    e = errors.from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "message larger than max", ())
    assert type(e) is vectron.ResourceExhausted
    e = errors.from_status(grpc.StatusCode.NOT_FOUND, "x", (("vectron-error-code", "SOME_FUTURE_CODE"),))
    assert isinstance(e, vectron.NotFound) and e.code == "SOME_FUTURE_CODE"
    e = errors.from_status(grpc.StatusCode.UNAUTHENTICATED, "expired", ((b"vectron-error-code", b"TOKEN_EXPIRED"),))
    assert isinstance(e, vectron.TokenExpired)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is vectron.TokenExpired and back.code == "TOKEN_EXPIRED" and back.message == "expired"


def _err(code: str, retryable: bool = True, retry_after: "float | None" = None) -> vectron.VectronError:
    return errors.error_class(code)("x", code=code, retryable=retryable, retry_after=retry_after)


def test_retry_policy() -> None:
    p = RetryPolicy(max_retries=3, initial_backoff=0.1, max_backoff=0.3, jitter=0.0)
    read = Call("vectron", "Get", None, idempotent=True)
    create = Call("vectron", "CreateCollection", None, idempotent=False)
    assert [p.delay(read, _err("UNAVAILABLE"), a) for a in range(4)] == [0.1, 0.2, 0.3, None]
    assert p.delay(read, _err("INVALID_ARGUMENT", retryable=False), 0) is None
    # A non-idempotent call is repeated only when the error says nothing happened.
    assert p.delay(create, _err("UNAVAILABLE"), 0) is None
    assert p.delay(create, _err("DEADLINE_EXCEEDED"), 0) is None
    assert p.delay(create, _err("NOT_LEADER"), 0) == 0.1
    limited = p.delay(create, _err("RESOURCE_EXHAUSTED", retry_after=2.0), 0)
    assert limited is not None and 2.0 <= limited <= 2.25, "waits at least retry-after"
    assert p.delay(read, _err("RESOURCE_EXHAUSTED", retry_after=61.0), 0) is None, "past max_retry_after"
    jittered = RetryPolicy(initial_backoff=1.0, jitter=0.5)
    waits = {jittered.delay(read, _err("UNAVAILABLE"), 0) for _ in range(50)}
    assert all(w is not None and 0.5 <= w <= 1.0 for w in waits) and len(waits) > 1
    seen = []
    RetryPolicy(on_retry=lambda e, n, d: seen.append((e.code, n))).delay(read, _err("UNAVAILABLE"), 1)
    assert seen == [("UNAVAILABLE", 2)]
    assert RetryPolicy.of(0).max_retries == 0 and RetryPolicy.of(None).max_retries == 0
    with pytest.raises(ValueError):
        RetryPolicy.of(-1)


def test_session_credentials_and_refresh_decision() -> None:
    assert Session(api_key="vx_a_b").metadata() == (("x-api-key", "vx_a_b"),)
    assert Session(token="t").metadata() == (("authorization", "Bearer t"),)
    assert Session().metadata() == ()
    with pytest.raises(ValueError):
        Session(api_key="k", token="t")
    s = Session(tokens=TokenPair("a1", "r1", access_expires_at=2**40, refresh_expires_at=2**40))
    call = Call("vectron", "Get", None)
    expired = errors.from_status(grpc.StatusCode.UNAUTHENTICATED, "x", (("vectron-error-code", "TOKEN_EXPIRED"),))
    revoked = errors.from_status(grpc.StatusCode.UNAUTHENTICATED, "x", (("vectron-error-code", "UNAUTHENTICATED"),))
    assert s.should_refresh(call, expired) and not s.should_refresh(call, revoked)
    assert not s.should_refresh(s.refresh_call(), expired), "a refresh is never refreshed"
    assert not Session(token="t").should_refresh(call, expired), "no refresh token"
    assert s.metadata(Call("auth", "Login", None, authenticated=False)) == ()
    g = s.generation
    s.set_tokens(TokenPair("a2", "r2", 0, 0))
    assert s.generation == g + 1 and s.metadata() == (("authorization", "Bearer a2"),)
    assert s.refresh_call().request.refresh_token == "r2"


def test_parse_url() -> None:
    assert cv.parse_url("127.0.0.1:8081") == ("127.0.0.1:8081", False)
    assert cv.parse_url("http://127.0.0.1:8081/") == ("127.0.0.1:8081", False)
    assert cv.parse_url("https://vectron.example") == ("vectron.example:443", True)
    assert cv.parse_url("localhost") == ("localhost:8081", False)
    assert cv.parse_url("[::1]:9000") == ("[::1]:9000", False)
    with pytest.raises(ValueError):
        cv.parse_url("http://host:1/path")


def test_upsert_inputs_are_checked_before_sending() -> None:
    ok = cv.point_stream([{"id": 1, "vector": np.array([1, 2], dtype=np.float32), "payload": {"a": 1}}], None, None, None)
    (p,) = list(ok[0])
    assert list(p.vector) == [1.0, 2.0] and p.payload.fields["a"].integer_value == 1 and ok[1] == 1
    cols, n = cv.point_stream(None, [1, "b"], np.ones((2, 3), dtype=np.float16), [None, {"x": "y"}])
    pts = list(cols)
    assert n == 2 and [cv.point_id_from_pb(q.id) for q in pts] == [1, "b"] and not pts[0].HasField("payload")
    for args in (
        ([{"id": 1}], None, None, None),
        ([{"id": 1, "vector": [1.0], "extra": 1}], None, None, None),
        (None, [1, 2], [[1.0]], None),
        (None, [1], [[1.0]], [{}, {}]),
        (None, [1], np.ones(3), None),
        ([{"id": 1, "vector": [1.0]}], [1], None, None),
    ):
        with pytest.raises(vectron.VectronError):
            list(cv.point_stream(*args)[0])
    with pytest.raises(vectron.InvalidVector):
        cv.vector_list("abc")
