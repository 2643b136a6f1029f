"""An app that knows Quarry only from docs/KEYS.md and a plain Redis client (redis-py).

Usage: poll_keys.py <queue-redis-url> <cache-redis-url> <prefix> <api-base-url> <data-dir> <bad-file>

It computes result keys itself, looks for them before asking, enqueues over HTTP, follows the
events channel checking every message's documented shape, polls the status hash and the result
key, and reads an index job's record, the indexes set and the index keys. It prints a JSON
summary on success; any mismatch with the documentation exits 1 with the reason.
"""

import hashlib
import json
import os
import sys
import time
import urllib.request
import uuid

import brotli
import redis

QUEUE_URL, CACHE_URL, PREFIX, API, DATA_DIR, BAD_FILE = sys.argv[1:7]
queue = redis.Redis.from_url(QUEUE_URL, decode_responses=True)
cache = redis.Redis.from_url(CACHE_URL, decode_responses=True)

# docs/KEYS.md, "The status record": every field, always present.
STATUS_FIELDS = {
    "type", "state", "progress", "attempts", "createdAt", "startedAt", "finishedAt",
    "resultKey", "errorCode", "errorMessage", "errorField", "collection", "version", "priority", "summary",
    "dataset",
}
# docs/KEYS.md, "The events channel": the keys of every message.
EVENT_KEYS = {
    "jobId", "type", "state", "progress", "attempts", "createdAt", "startedAt", "finishedAt",
    "resultKey", "error", "priority", "summary", "dataset",
}
STATES = {"queued", "active", "completed", "failed", "cancelled"}
FINAL = {"completed", "failed", "cancelled"}
DEADLINE_S = 60


def fail(message):
    print(f"poll_keys: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def canonical(value):
    # docs/KEYS.md, "Canonical JSON".
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def result_key(normalized_spec, dataset, records=None):
    h = hashlib.sha256()
    h.update(b"quarry/aggregate/v1\n")
    h.update(canonical({**normalized_spec, "dataset": dataset}).encode("utf-8"))
    if records is not None:
        h.update(b"\n")
        h.update(canonical(records).encode("utf-8"))
    return h.hexdigest()[:32]


def http(method, path, body=None):
    request = urllib.request.Request(
        API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode("utf-8"),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def check_status_hash(job_id, h):
    # docs/KEYS.md: `payload` while live and on failed/cancelled records (kept for a retry),
    # `owner` only while live; neither on a completed record.
    extra = set(h) - STATUS_FIELDS
    allowed = {"payload", "owner"} if h.get("state") in ("queued", "active") else (
        {"payload"} if h.get("state") in ("failed", "cancelled") else set())
    check(STATUS_FIELDS <= set(h) and extra <= allowed,
          f"{job_id}: hash fields {sorted(h)} are not the documented ones")
    check(h["type"] in ("aggregate", "index"), f"{job_id}: type {h['type']!r}")
    check(h["state"] in STATES, f"{job_id}: state {h['state']!r}")
    progress = json.loads(h["progress"])
    check({"phase", "percent"} <= set(progress) <= {"phase", "percent", "count"}, f"progress {progress}")
    check(h["attempts"].isdigit(), f"{job_id}: attempts {h['attempts']!r}")
    check(h["createdAt"].isdigit(), f"{job_id}: createdAt {h['createdAt']!r}")
    for field in ("startedAt", "finishedAt"):
        check(h[field] == "" or h[field].isdigit(), f"{job_id}: {field} {h[field]!r}")
    check(h["errorCode"] == "" or h["errorCode"].startswith("QUARRY_ERR_"), f"errorCode {h['errorCode']!r}")
    check((h["errorCode"] == "") == (h["errorMessage"] == ""), f"{job_id}: errorCode without errorMessage")
    check(h["version"] == "" or h["version"].isdigit(), f"{job_id}: version {h['version']!r}")
    check(h["summary"] != "" and h["dataset"] != "", f"{job_id}: no summary or dataset")
    if h["type"] == "aggregate":
        check(len(h["resultKey"]) == 32, f"{job_id}: resultKey {h['resultKey']!r}")
        check(h["collection"] == "" and h["version"] == "", f"{job_id}: index fields on an aggregation")
    else:
        check(h["resultKey"] == "", f"{job_id}: an index job with resultKey {h['resultKey']!r}")
        check(h["collection"] != "", f"{job_id}: index job without a collection")
    if h["state"] in FINAL:
        check(h["finishedAt"].isdigit(), f"{job_id}: final without finishedAt")
    if h["state"] in ("failed", "cancelled"):
        check(h["errorCode"] != "", f"{job_id}: {h['state']} without errorCode")
    return h


def check_event(event, h_type):
    keys = set(event)
    extra = keys - EVENT_KEYS
    check(EVENT_KEYS <= keys, f"event lacks {sorted(EVENT_KEYS - keys)}: {event}")
    allowed_extra = {"collection", "version"} if h_type == "index" else set()
    check(extra <= allowed_extra, f"event has undocumented keys {sorted(extra)}: {event}")
    check(event["state"] in STATES, f"event state {event['state']!r}")
    check(isinstance(event["attempts"], int), f"event attempts {event['attempts']!r}")
    check(isinstance(event["progress"], dict) and "phase" in event["progress"], f"progress {event}")
    for field in ("createdAt", "startedAt", "finishedAt"):
        v = event[field]
        check(v is None or (isinstance(v, str) and v.endswith("Z") and "T" in v), f"event {field} {v!r}")
    check(event["createdAt"] is not None, f"event without createdAt: {event}")
    e = event["error"]
    check(e is None or (set(e) in ({"code", "message"}, {"code", "message", "field"}) and e["code"].startswith("QUARRY_ERR_")), f"error {e}")
    if event["state"] in ("failed", "cancelled"):
        check(e is not None, f"{event['state']} event without an error")


def follow(pubsub, job_id, h_type):
    """The messages for job_id until its final state, each checked."""
    seen = []
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        message = pubsub.get_message(timeout=1.0)
        if message is None or message["type"] != "message":
            continue
        event = json.loads(message["data"])
        if event.get("jobId") != job_id:
            continue
        check_event(event, h_type)
        seen.append(event)
        if event["state"] in FINAL:
            return seen
    fail(f"no final event for {job_id} within {DEADLINE_S} s; saw {[e['state'] for e in seen]}")


def iso_of(ms):
    # The hash's epoch ms as the events' ISO 8601 (docs: same instant, two encodings).
    t = int(ms)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + f".{t % 1000:03d}Z"


def same_record(event, h, where):
    # The final message is the hash after the final change, in the events' encoding.
    check(event["state"] == h["state"], f"{where}: state {event['state']} vs {h['state']}")
    check(event["resultKey"] == (h["resultKey"] or None), f"{where}: resultKey differs")
    check(event["attempts"] == int(h["attempts"]), f"{where}: attempts differ")
    check(event["progress"] == json.loads(h["progress"]), f"{where}: progress differs")
    for field in ("createdAt", "startedAt", "finishedAt"):
        want = iso_of(h[field]) if h[field] else None
        check(event[field] == want, f"{where}: {field} {event[field]} vs {want}")
    want_error = {"code": h["errorCode"], "message": h["errorMessage"]} if h["errorCode"] else None
    if want_error is not None and h["errorField"]:
        want_error["field"] = h["errorField"]
    check(event["error"] == want_error, f"{where}: error {event['error']} vs {want_error}")


summary = {}
pubsub = queue.pubsub(ignore_subscribe_messages=False)
pubsub.subscribe(f"{PREFIX}:events")
check(pubsub.get_message(timeout=5.0)["type"] == "subscribe", "no subscribe confirmation")

# 1. An inline aggregation: compute its key, look, ask, follow, poll.
marker = uuid.uuid4().hex  # a value of our own: the result cannot be cached already
records = [{"g": "a", "v": 1, "m": marker}, {"v": 3, "g": "a", "m": marker}, {"g": "b", "v": 10, "m": marker}]
request = {
    "dataset": {"records": records},
    "groupBy": ["g"],
    "metrics": [{"op": "count"}, {"op": "sum", "column": "v"}, {"op": "quantile", "column": "v", "q": 0.5}],
    "orderBy": [{"column": "g"}],
}
normalized = {
    "engine": "auto",
    "filters": [],
    "groupBy": ["g"],
    "metrics": [
        {"op": "count", "as": "count"},
        {"op": "sum", "column": "v", "as": "sum_v"},
        {"op": "quantile", "column": "v", "q": 0.5, "method": "linear", "as": "p50_v"},
    ],
    "orderBy": [{"column": "g", "direction": "asc"}],
}
key = result_key(normalized, {"kind": "inline"}, records)
check(cache.get(f"{PREFIX}:result:{key}") is None, "a result exists before the job was asked for")
status, body = http("POST", "/v1/aggregations", request)
check(status == 202, f"POST /v1/aggregations answered {status}: {body}")
check(body["resultKey"] == key, f"computed resultKey {key}, Quarry says {body['resultKey']}: the docs are wrong")
job_id = body["jobId"]
check(job_id == f"agg-{key}", f"job id {job_id} is not agg-<resultKey>")
events = follow(pubsub, job_id, "aggregate")
states = [e["state"] for e in events]
check(states[-1] == "completed", f"aggregation ended {states}")
check("active" in states, f"no active event in {states}")
check(all(e["resultKey"] == key for e in events), "an event carries a resultKey other than the record's")
check(all(e["type"] == "aggregate" for e in events), "an event lacks the record's type")
h = check_status_hash(job_id, queue.hgetall(f"{PREFIX}:job:{job_id}"))
check(h["state"] == "completed" and h["errorCode"] == "", f"record after completion: {h}")
same_record(events[-1], h, "aggregation")
envelope = json.loads(cache.get(f"{PREFIX}:result:{key}"))
check(envelope["resultKey"] == key, "the envelope names another key")
rows = [{k: r[k] for k in ("g", "count", "sum_v", "p50_v")} for r in envelope["rows"]]
check(rows == [{"g": "a", "count": 2, "sum_v": 4, "p50_v": 2}, {"g": "b", "count": 1, "sum_v": 10, "p50_v": 10}], f"rows {rows}")
summary["aggregation"] = {"resultKey": key, "states": states}

# 2. A file aggregation that fails at the worker: its key from the file's stat, a failed record.
st = os.stat(os.path.join(DATA_DIR, BAD_FILE))
file_spec = {"engine": "auto", "filters": [], "groupBy": [], "metrics": [{"op": "count", "as": "count"}], "orderBy": []}
file_dataset = {"kind": "file", "path": BAD_FILE, "format": "parquet", "size": st.st_size, "mtimeMs": st.st_mtime_ns // 1_000_000}
file_key = result_key(file_spec, file_dataset)
status, body = http("POST", "/v1/aggregations", {"dataset": {"path": BAD_FILE}, "metrics": [{"op": "count"}]})
check(status == 202, f"POST (file) answered {status}: {body}")
check(body["resultKey"] == file_key, f"computed file resultKey {file_key}, Quarry says {body['resultKey']}: the docs are wrong")
failed_events = follow(pubsub, body["jobId"], "aggregate")
check(failed_events[-1]["state"] == "failed", f"the unreadable file's job ended {failed_events[-1]['state']}")
h = check_status_hash(body["jobId"], queue.hgetall(f"{PREFIX}:job:{body['jobId']}"))
check(h["state"] == "failed" and h["errorCode"] == failed_events[-1]["error"]["code"], f"failed record {h}")
same_record(failed_events[-1], h, "failed aggregation")
check(cache.get(f"{PREFIX}:result:{file_key}") is None, "a failed job left a result")
summary["failed"] = {"resultKey": file_key, "errorCode": h["errorCode"]}

# 3. An index build: the record's index fields, the indexes set, seq, current, metadata, chunks.
collection = f"py-{marker[:8]}"
status, body = http("POST", f"/v1/indexes/{collection}", {
    "documents": [{"id": "1", "text": "red apples"}, {"id": "2", "text": "green pears"}],
    "idField": "id", "fields": ["text"], "store": ["text"],
})
check(status == 202, f"POST /v1/indexes answered {status}: {body}")
index_job = body["jobId"]
index_events = follow(pubsub, index_job, "index")
check(index_events[-1]["state"] == "completed", f"index job ended {index_events[-1]['state']}")
check(all(e["resultKey"] is None and e.get("collection") == collection for e in index_events), "index events lack collection")
h = check_status_hash(index_job, queue.hgetall(f"{PREFIX}:job:{index_job}"))
check(h["collection"] == collection and h["version"].isdigit(), f"index record {h}")
check(index_events[-1].get("version") == int(h["version"]), "the final index event lacks the version")
same_record(index_events[-1], h, "index")
version = int(h["version"])
check(collection in queue.smembers(f"{PREFIX}:indexes"), "the collection is not in <prefix>:indexes")
check(int(queue.get(f"{PREFIX}:index:{collection}:current")) == version, "current is not the built version")
check(int(queue.get(f"{PREFIX}:index:{collection}:seq")) >= version, "seq is behind the version")
meta = queue.hgetall(f"{PREFIX}:index:{collection}:v{version}")
check(
    {"chunks", "bytes", "documents", "terms", "builtAt", "buildMs", "jobId", "docChunks", "docBytes", "docEncoding"}
    == set(meta),
    f"index metadata {meta}",
)
check(meta["jobId"] == index_job and meta["documents"] == "2", f"index metadata {meta}")
raw = redis.Redis.from_url(QUEUE_URL)  # binary chunks: no decoding
total = sum(raw.strlen(f"{PREFIX}:index:{collection}:v{version}:{i}") for i in range(int(meta["chunks"])))
check(total == int(meta["bytes"]), f"chunks hold {total} bytes, metadata says {meta['bytes']}")
kept = b"".join(raw.get(f"{PREFIX}:index:{collection}:v{version}:d{i}") for i in range(int(meta["docChunks"])))
check(len(kept) == int(meta["docBytes"]) and meta["docEncoding"] == "json.br", f"document chunks {meta}")


def decode_frames(data):
    # json.br (docs/KEYS.md): frames of b"QDBR", a little-endian uint32 length, a brotli stream.
    text, at = b"", 0
    while at < len(data):
        check(data[at : at + 4] == b"QDBR", f"no frame at byte {at}")
        length = int.from_bytes(data[at + 4 : at + 8], "little")
        text += brotli.decompress(data[at + 8 : at + 8 + length])
        at += 8 + length
    return text


kept_docs = json.loads(decode_frames(kept))
check(isinstance(kept_docs, list) and len(kept_docs) == 2, f"kept documents {kept_docs}")
summary["index"] = {"collection": collection, "version": version, "states": [e["state"] for e in index_events]}

# 4. The history index and the activity counters, as docs/KEYS.md describes them.
failed_job = failed_events[-1]["jobId"]
history = queue.zrevrange(f"{PREFIX}:history", 0, -1, withscores=True)
listed = [member for member, _ in history]
for jid in (job_id, failed_job, index_job):
    check(jid in listed, f"{jid} is not in <prefix>:history")
for member, score in history:
    created = queue.hget(f"{PREFIX}:job:{member}", "createdAt")
    check(created is None or int(score) == int(created), f"history score of {member} is not its createdAt")
check(listed.index(index_job) < listed.index(job_id), "history is not newest first")
every = queue.zrange(f"{PREFIX}:history-all", 0, -1)
check(f"/{job_id}" in every and f"/{index_job}" in every, "<prefix>:history-all lacks /<jobId> members")
now_minute = int(time.time() * 1000) // 60000
ended = {"completed": 0, "failed": 0, "cancelled": 0}
for minute in range(now_minute - 10, now_minute + 1):
    counters = queue.hgetall(f"{PREFIX}:activity:{minute}")
    for state in ended:
        ended[state] += int(counters.get(state, "0"))
    histogram = sum(int(v) for f, v in counters.items() if f.startswith("b"))
    check(histogram == int(counters.get("runs", "0")), f"activity {minute}: bucket counts differ from runs")
    check(set(counters) <= {"completed", "failed", "cancelled", "runs"} | {f"b{i}" for i in range(64)},
          f"activity {minute}: undocumented fields {sorted(counters)}")
check(ended["completed"] >= 2 and ended["failed"] >= 1, f"activity counted {ended}")
summary["activity"] = ended

pubsub.close()
print(json.dumps(summary))
