#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ from the repository's own examples:
shipped pipelines, golden bad pipelines, documented envelopes, keys and checkpoints, filter
expressions from the docs, orders from examples/orders.jsonl, KPL aggregates built here.
Seeds are named by content hash, so running it again adds nothing twice."""

import glob
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


orders = read("examples/orders.jsonl").splitlines()[:12]

# pipeline_load: shipped pipelines, golden bad and warning pipelines, two with --var values.
for pattern in ["pipelines/*.toml", "pipelines/*.j2", "tests/golden/bad/*.toml", "tests/golden/warn/*.toml"]:
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
        put("pipeline_load", read(path))
put("pipeline_load", read("pipelines/replay.toml.j2") + b"\0incident=INC-7\0from=2026-11-25T09:00:00Z\0to=2026-11-25T10:00:00Z")
put("pipeline_load", read("pipelines/quickstart.toml") + b"\0stream=orders'\n[sinks.x]\0input=a\"b")

# envelope: documented archive lines, and the example payloads as payloads.
envelopes = [
    b'{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"1","partition_key":"c-17","arrival_ts":"2026-11-26T11:12:13.319Z","data":{"order_id":"o-1","total":1.50}}',
    b'{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"2","partition_key":"c-17","arrival_ts":"2026-11-26T11:12:13.319Z","data_b64":"V0FSTiBsZWdhY3kgaGVhcnRiZWF0"}',
    b'{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"3","partition_key":"c-17","arrival_ts":"2026-11-26T11:12:13.319Z","data_b64":"IHsiYSI6MX0="}',
    b'{"stream":"orders","shard_id":"shardId-000000000002","sequence_number":"136","partition_key":"unkeyed","arrival_ts":"2026-11-26T11:09:04.172Z","data_b64":"V0FSTiBsZWdhY3kgcHJvZHVjZXIgaGVhcnRiZWF0IDIwMjYtMTEtMjVUMDk6MDg6NDBa","annotations":{"error":{"reason":"line 136: arrival time: $.created_at selects nothing","stage":"orders"}}}',
    b'{"stream":"orders","shard_id":"shardId-000000000001","sequence_number":"49590338271490256608559692538361571095","sub_sequence_number":3,"partition_key":"k","arrival_ts":"2026-11-25T10:00:00.123Z","data":null}',
    b'{"stream":"orders","shard_id":"shardId-000000000001","sequence_number":"7","partition_key":"\\u00e9\\"","arrival_ts":"2026-11-25T10:00:00+01:00","data":"\\ud83d\\ude00","annotations":{}}',
    b'{"stream":"orders","shard_id":"shardId-000000000001","sequence_number":"8","partition_key":"p","arrival_ts":"2026-11-25T10:00:00Z","data":[1,2.5e3,-0,{"a":true}],"data_b64":"AA=="}',
]
for line in envelopes:
    put("envelope", line)
for o in orders[:6]:
    env = b'{"stream":"orders","shard_id":"shardId-000000000003","sequence_number":"1003","partition_key":"c-1","arrival_ts":"2026-11-25T09:00:00.000Z","data":' + o + b"}"
    put("envelope", env)
    put("envelope", o)
for raw in [b"", b" {}", b"{}\n", b"\xff\xfe", b'"\\ud800"', b"1e400", b'{"a":1,"a":2}']:
    put("envelope", raw)

# archive_names: documented keys, staged keys, checkpoints.
keys = [
    "stream=orders/dt=2026-11-25/hour=09/shard=shardId-000000000000/5-998.json.gz",
    "stream=orders/dt=2026-11-25/hour=11/shard=shardId-000000000003/2007-2998.json.gz",
    "stream=orders/dt=2026-11-25/hour=10/shard=shardId-000000000001/part-1000-1997.jsonl.gz",
    "stream=orders/dt=2026-11-25/hour=10/shard=shardId-000000000001/export.ndjson",
    "stream=orders/dt=2026-11-25/hour=23/shard=.hidden/1-2.json",
    "stream=orders/dt=2026-11-25/hour=24/shard=shardId-000000000001/1-2.json.gz",
    "stream=orders/dt=2026-11-25/hour=10/shard=shardId-000000000001/.1-2.json.gz~tmp",
    "stream=orders-eu/dt=2026-11-25/hour=10/shard=shardId-000000000001/1-2.json.gz",
    "stream=orders/x/dt=2026-11-25/hour=10/shard=s/1-2.json.gz",
    "stream=orders/dt=2026-11-25/hour=10/shard=s/x1f-x2a.json.gz",
    "stream=orders/dt=2026-11-25/hour=10/shard=s/" + "1" * 129 + "-" + "9" * 129 + ".json.gz",
    "_flux/checkpoints/stream=orders/shardId-000000000000.json",
    "_flux/checkpoints/stream=orders/nested/shardId-000000000000.json",
    "_flux/checkpoints/stream=a.b-c_d/..json",
    "_flux/staging/stream=orders/shard=shardId-000000000000/run=20261126T110904Z-72b6d217/5-998.json.gz",
    "_flux/staging/stream=orders/shard=shardId-000000000000/run=r/x" + "f" * 100 + "-x" + "f" * 101 + ".json.gz",
    "_flux/runs/stream=orders/20261126T110904Z-72b6d217.json",
    "_flux/gaps/stream=orders/shard=shardId-000000000000/2999.json",
]
for k in keys:
    put("archive_names", k)
checkpoint = {
    "stream": "orders",
    "shard_id": "shardId-000000000000",
    "sequence_number": "2999",
    "arrival_ts": "2026-11-25T11:58:58.636Z",
    "object": "stream=orders/dt=2026-11-25/hour=11/shard=shardId-000000000000/2006-2999.json.gz",
    "run_id": "20261126T110904Z-72b6d217",
    "updated_at": "2026-11-26T11:09:04.931Z",
}
put("archive_names", json.dumps(checkpoint, indent=2))
put("archive_names", json.dumps(dict(checkpoint, staged="_flux/staging/stream=orders/shard=shardId-000000000000/run=r/2006-2999.json.gz")))
put("archive_names", json.dumps(dict(checkpoint, extra=1)))

# filter_expr: documented expressions, alone and with a payload.
exprs = [
    "@.data.region == 'eu'",
    "@.data.status == 'cancelled' && @.data.total > 100",
    "@.data.status == 'a' || @.data.status == 'b'",
    "@.shard_id == 'shardId-000000000001'",
    "@.data.coupon",
    "match(@.data.region, 'e.*')",
    "search(@.data.customer.name, '[a-z]+')",
    "length(@.data.items) >= 2",
    "count(@.data.items[*]) > 1 && !(@.data.status == 'paid')",
    "value(@.data.items[0].sku) == 'SKU-LAMP-337'",
    "@.data == 'plain text'",
    "@.annotations.error.stage == 'orders'",
    "@.data.region != 'eu'",
    "@.data.total >= 1.5e2 && @.data.seq <= 3",
    "@.data['customer']['city'] == 'Sydney'",
    "@.data.status = 'cancelled'",
    "@.data.status == 'x\\'y' && @.data.n == null && @.data.b == true",
    "$.data.order_id",
    "$.data.items[*].sku",
    "$..sku",
    "$.data.items[-1:]",
    "$['data']['customer']",
    "",
]
for e in exprs:
    put("filter_expr", e)
for e, o in zip(exprs, orders):
    put("filter_expr", e.encode() + b"\0" + o)
put("filter_expr", b"@.data == 'plain text'\0plain text")
put("filter_expr", b"@.data.status == '\xc3\xa9'\0{\"status\":\"\\u00e9\"}")

# kpl: protobuf bodies (the target adds magic and checksum) and whole aggregates.
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def field(tag, wire, payload):
    key = varint(tag << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else varint(payload))

def body(keys, users, hash_keys=()):
    out = b"".join(field(1, 2, k.encode()) for k in keys)
    out += b"".join(field(2, 2, h.encode()) for h in hash_keys)
    for idx, data, extra in users:
        out += field(3, 2, field(1, 0, idx) + extra + field(3, 2, data))
    return out

MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])
bodies = [
    body(["c-1"], [(0, orders[0], b"")]),
    body(["c-1", "c-2"], [(0, orders[1], b""), (1, orders[2], b""), (0, b"", b"")]),
    body(["k"], [(0, b"x", field(2, 0, 0))], ["340282366920938463463374607431768211455"]),
    body(["k"], [(0, b"x", field(4, 2, field(1, 2, b"tag") + field(2, 2, b"v")))]),
    body(["k"], [(1, b"bad index", b"")]),
    body([], []),
    body(["k"], [(0, MAGIC + b"nested", b"")]),
]
for b in bodies:
    put("kpl", b)
    put("kpl", MAGIC + b + hashlib.md5(b).digest())
put("kpl", MAGIC + bodies[0] + b"\0" * 16)
put("kpl", MAGIC + b"short")
put("kpl", orders[0])

# compact_key: order payloads, and chosen paths with payloads.
for o in orders:
    put("compact_key", o)
for names, payload in [
    (b"customer.city", orders[0]),
    (b"items", orders[1]),
    (b"k", b'{"k":12345678901234567890123}'),
    (b"k", b'{"k" : 1.50 , "k":"last"}'),
    (b"a.k", b'{"a":{"k":{"y":1,"x":[2, 1e-7]}}}'),
    (b"k", b'{"\\u006b":"escaped name"}'),
    (b"k", b'{"k":"a","z":[}'),
    (b"k", b'{"k":"a","z":1e400}'),
    (b"k", b'{"k":"\\ud800"}'),
    (b"$.data['k']", b'{"k":1}'),
]:
    put("compact_key", names + b"\0" + payload)
