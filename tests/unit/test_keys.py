"""lambda_fns/keys.py: the write-sharding rule and the keys every writer and reader derives."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest

from lambda_fns import constants as c
from lambda_fns import keys


@pytest.mark.parametrize(("cases", "shards"), [
    (1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (1000, 4),  # one chunk emitted at a time: 4 shards
    (1001, 8), (5000, 20), (10_000, 40),  # a shard set per chunk emitted at once
    (100_000, 40), (1_000_000, 40),  # at most FANOUT_MAX_CONCURRENCY chunks at once
])
def test_the_shard_rule_follows_the_chunks_emitted_at_once(cases: int, shards: int) -> None:
    assert keys.shard_count(cases) == shards


def test_the_shard_rule_keeps_each_partition_at_half_its_write_limit() -> None:
    # A chunk puts EMIT_PUT_EVENTS_PER_SECOND calls of 10 cases a second; each case costs WRITES_PER_CASE
    # write units in its row; a shard should take at most PARTITION_WRITES_TARGET (half of 1,000) a second.
    per_chunk = c.EMIT_PUT_EVENTS_PER_SECOND * c.PUT_EVENTS_MAX_ENTRIES * keys.WRITES_PER_CASE
    assert keys.SHARDS_PER_CHUNK == 4
    assert per_chunk / keys.SHARDS_PER_CHUNK <= keys.PARTITION_WRITES_TARGET <= 1000 / 2
    # More chunks at once (the fanOutConcurrency context) means more shards, in proportion.
    assert keys.shard_count(1_000_000, fan_out_concurrency=40) == 160


def test_a_case_always_lands_in_the_same_shard_and_the_shards_fill_evenly() -> None:
    assert keys.shard_of("case-17", 40) == zlib.crc32(b"case-17") % 40 == keys.shard_of("case-17", 40)
    spread = Counter(keys.shard_of(str(i), 40) for i in range(40_000))
    assert set(spread) == set(range(40))
    assert max(spread.values()) < 1.1 * 1000 and min(spread.values()) > 0.9 * 1000


def test_the_results_key_names_the_request_shard_and_the_case() -> None:
    key = keys.results_key("order 42/2026 #a", "7", 4)
    shard = zlib.crc32(b"7") % 4
    assert key == {c.ATTR_REQUEST_SHARD: {"S": f"order 42/2026 #a#{shard}"}, c.ATTR_CASE_ID: {"S": "7"}}
    assert keys.results_key("r", "7", 1)[c.ATTR_REQUEST_SHARD] == {"S": "r#0"}


@pytest.mark.parametrize(("detail", "shards"), [
    ({c.DETAIL_SHARDS: 4}, 4), ({c.DETAIL_SHARDS: "4"}, 4), ({c.DETAIL_SHARDS: 4.0}, 4),
    ({}, None), ({c.DETAIL_SHARDS: 0}, None), ({c.DETAIL_SHARDS: -2}, None), ({c.DETAIL_SHARDS: 2.5}, None),
    ({c.DETAIL_SHARDS: True}, None), ({c.DETAIL_SHARDS: "many"}, None), ({c.DETAIL_SHARDS: None}, None), ("x", None),
])
def test_an_event_s_shard_count_is_a_positive_whole_number_or_none(detail: object, shards: int | None) -> None:
    assert keys.shards_of(detail) == shards


def test_every_object_key_stays_within_s3_s_limit_for_the_longest_request_id() -> None:
    longest = "é" * (c.MAX_REQUEST_ID_BYTES // 2)
    token = "a" * 36  # a Lambda request id
    for key in (keys.chunk_key(keys.chunk_prefix(longest, token), 999_999), keys.manifest_key(longest, token),
                keys.summary_key(longest), keys.request_key(longest, "b" * 32),
                keys.results_prefix(longest, token) + "not-succeeded-00000.jsonl"):
        assert len(key.encode()) <= 1024, key
