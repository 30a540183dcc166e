#!/usr/bin/env python3
"""Generate a deterministic sample of e-commerce order events as JSON Lines.

Each line is one payload as a producer would put it into an AWS Kinesis
stream. With the defaults (``--lines 3000 --seed 42``) this writes the
committed ``examples/orders.jsonl`` and ``examples/orders.summary.json``.

File contents:
  * ``lines - 5`` compact UTF-8 JSON objects (2995 with the defaults), keys:
    event_id (unique UUID), order_id ("o-000123"), seq (1-based event number
    within the order), customer_id ("c-00042", 300 customers, Zipf-like
    popularity), status (created -> paid -> shipped -> delivered, sometimes
    cancelled or refunded; an order's events appear in that order), region
    ("eu", "us" = Americas, "apac"), created_at (RFC 3339 UTC with
    milliseconds, non-decreasing, 2026-11-25T09:00:00.000Z to about
    11:59:00Z, i.e. hours 09, 10 and 11), total (number, at most 2 decimals;
    JSON drops trailing zeros, so 12.50 is written as 12.5), currency,
    customer {name, city, country} with non-ASCII text (Zoë, Łukasz, 王芳,
    München, São Paulo, ...), items [{sku, qty, price}].
  * exactly 5 lines that are NOT valid JSON (none parse with json.loads), at
    fixed fractions of the file (4.5%, 27%, 50%, 73%, 95%): a plain-text WARN
    log line, a CSV-ish line, a truncated JSON object, a tab-separated line
    with unicode, and a Python-repr dict (single quotes).
  No line contains a line break of any kind; every line ends with "\\n".

Only ``random.Random(seed)`` is used (no clock), so two runs with the same
arguments produce byte-identical files. The summary (also printed to stderr
on one line) is computed by re-reading the written file.

Usage: python3 gen_orders.py [--lines N] [--seed S] [--out PATH] [--summary PATH]
"""
import argparse
import json
import random
import sys
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = datetime(2026, 11, 25, 9, 0, 0)       # naive, interpreted as UTC
SPAN_MS = (2 * 60 + 59) * 60 * 1000            # last event at 11:59:00.000Z
N_CUSTOMERS = 300
NOISE_FRACTIONS = (0.045, 0.27, 0.50, 0.73, 0.95)

# city -> (region, country, currency); "us" is the Americas shop region.
CITIES = {
    "München": ("eu", "DE", "EUR"), "Kraków": ("eu", "PL", "PLN"),
    "København": ("eu", "DK", "DKK"), "Zürich": ("eu", "CH", "CHF"),
    "Málaga": ("eu", "ES", "EUR"), "Łódź": ("eu", "PL", "PLN"),
    "Paris": ("eu", "FR", "EUR"), "São Paulo": ("us", "BR", "BRL"),
    "Montréal": ("us", "CA", "CAD"), "New York": ("us", "US", "USD"),
    "San José": ("us", "US", "USD"), "東京": ("apac", "JP", "JPY"),
    "北京": ("apac", "CN", "CNY"), "서울": ("apac", "KR", "KRW"),
    "Singapore": ("apac", "SG", "SGD"), "Sydney": ("apac", "AU", "AUD"),
}
FIRST = ["Zoë", "Łukasz", "Søren", "José", "Anaïs", "Björn", "Chloé", "Jürgen",
         "Ana", "Oliver", "Małgorzata", "Renée", "Mia", "Noah", "François", "Ines"]
LAST = ["Müller", "Nowak", "Sørensen", "García", "Dubois", "Öberg", "Smith",
        "Kowalczyk", "Silva", "O'Brien", "Ďuriš", "Jensen"]
CJK_NAMES = ["王芳", "李伟", "張偉", "佐藤健", "鈴木花子", "김민준", "이서연"]
PRODUCTS = ["tea", "mug", "lamp", "sock", "book", "pen", "bag", "cap", "kettle", "scarf"]


def make_noise(order_ids, ts):
    """The 5 non-JSON lines real streams carry (none contain a line break).

    ts is the created_at of the JSON line just before the heartbeat line."""
    stamp = ts[:19] + "Z"
    return [
        f"WARN legacy producer heartbeat {stamp}",
        "o-000999,paid,12.50",
        '{"order_id":"o-000777","status":"pa',
        "DEBUG\tcart abandoned\tkunde=Jürgen\tstadt=Köln ✓",
        f"{{'order_id': '{order_ids[-1]}', 'status': 'paid', 'total': 19.99}}",
    ]


def lifecycle(rng):
    """Full status path of one order, decided when it is created."""
    if rng.random() < 0.10:
        return ["created", "cancelled"]
    r = rng.random()
    if r < 0.04:
        return ["created", "paid", "cancelled"]
    if r < 0.07:
        return ["created", "paid", "refunded"]
    path = ["created", "paid", "shipped", "delivered"]
    return path + ["refunded"] if rng.random() < 0.05 else path


def generate(n_lines, seed):
    rng = random.Random(seed)
    n_noise = len(NOISE_FRACTIONS)
    n_json = n_lines - n_noise

    # Fixed per-customer profile; popularity ~ 1/rank^0.8 (a few big spenders).
    customers = []
    for i in range(1, N_CUSTOMERS + 1):
        city = rng.choice(list(CITIES))
        region = CITIES[city][0]
        if region == "apac" and rng.random() < 0.6:
            name = rng.choice(CJK_NAMES)
        else:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        customers.append((f"c-{i:05d}", name, city))
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(N_CUSTOMERS)]
    catalog = [(f"SKU-{p.upper()}-{k:03d}", rng.randint(199, 24999) / 100)
               for p in PRODUCTS for k in rng.sample(range(1, 1000), 4)]

    # Timestamps: random integer gaps, rescaled (integer math) onto SPAN_MS.
    gaps = [0] + [rng.randint(1, 1000) for _ in range(n_json - 1)]
    total_gap, cum, stamps = sum(gaps) or 1, 0, []
    for g in gaps:
        cum += g
        t = START + timedelta(milliseconds=cum * SPAN_MS // total_gap)
        stamps.append(t.isoformat(timespec="milliseconds") + "Z")

    # Simulate: each slot either opens a new order or advances an open one.
    active, events, next_order = [], [], 1
    for ts in stamps:
        if not active or rng.random() < (0.5 if len(active) < 30 else 0.15):
            cid, name, city = rng.choices(customers, weights)[0]
            items = [{"sku": sku, "qty": rng.randint(1, 3), "price": price}
                     for sku, price in rng.sample(catalog, rng.randint(1, 4))]
            cents = sum(round(it["price"] * 100) * it["qty"] for it in items)
            region, country, currency = CITIES[city]
            order = {"order_id": f"o-{next_order:06d}", "customer_id": cid,
                     "region": region, "total": cents / 100, "currency": currency,
                     "customer": {"name": name, "city": city, "country": country},
                     "items": items, "path": lifecycle(rng), "seq": 0}
            next_order += 1
            active.append(order)
        else:
            order = rng.choice(active)
        status = order["path"][order["seq"]]
        order["seq"] += 1
        if order["seq"] == len(order["path"]):
            active.remove(order)
        events.append({
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "order_id": order["order_id"], "seq": order["seq"],
            "customer_id": order["customer_id"], "status": status,
            "region": order["region"], "created_at": ts,
            "total": order["total"], "currency": order["currency"],
            "customer": order["customer"], "items": order["items"],
        })

    lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in events]
    # Splice noise lines in at fixed fractions of the final file (0-based index).
    positions = sorted({int(n_lines * f) for f in NOISE_FRACTIONS})
    assert len(positions) == n_noise, "--lines too small for distinct positions"
    order_ids = sorted({e["order_id"] for e in events})
    noise = make_noise(order_ids, stamps[positions[0] - 1])
    for pos, text in zip(positions, noise):
        lines.insert(pos, text)
    return lines


def summarize(path):
    """Re-read the written file and compute the numbers the tests assert."""
    raw = path.read_bytes().decode("utf-8")
    lines = raw.split("\n")
    assert lines[-1] == "" and all(len(l.splitlines()) == 1 for l in lines[:-1])
    objs, non_json = [], 0
    for line in lines[:-1]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            objs.append(obj)
        else:
            non_json += 1
    stamps = [o["created_at"] for o in objs]
    assert stamps == sorted(stamps), "created_at must be non-decreasing"
    assert len({o["event_id"] for o in objs}) == len(objs), "event_id not unique"
    per_hour = Counter(s[:13] for s in stamps)
    return {
        "lines": len(lines) - 1,
        "json_lines": len(objs),
        "non_json_lines": non_json,
        "statuses": dict(sorted(Counter(o["status"] for o in objs).items())),
        "cancelled_over_100": sum(1 for o in objs
                                  if o["status"] == "cancelled" and o["total"] > 100),
        "distinct_orders": len({o["order_id"] for o in objs}),
        "distinct_customers": len({o["customer_id"] for o in objs}),
        "hours": sorted(per_hour),
        "per_hour": dict(sorted(per_hour.items())),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=HERE / "orders.jsonl")
    ap.add_argument("--summary", type=Path, default=None,
                    help="default: OUT with suffix .summary.json")
    args = ap.parse_args()
    if args.lines < 50:
        ap.error("--lines must be at least 50")
    summary_path = args.summary or args.out.with_suffix(".summary.json")

    lines = generate(args.lines, args.seed)
    args.out.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    summary = summarize(args.out)
    summary_path.write_bytes((json.dumps(summary, ensure_ascii=False, indent=2)
                              + "\n").encode("utf-8"))
    print(f"{args.out}: {json.dumps(summary, ensure_ascii=False)}", file=sys.stderr)


if __name__ == "__main__":
    main()
