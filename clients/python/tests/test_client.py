"""The client against a real Quarry (Redis, API, worker) started by
test/integration/python-client.test.ts, which passes its addresses in QUARRY_TEST_* variables."""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import queue
import threading
import time
import unittest
import uuid

from quarry import Quarry, QuarryError, item_error, sign, verify_webhook

URL = os.environ.get("QUARRY_TEST_URL")
IDLE_URL = os.environ.get("QUARRY_TEST_IDLE_URL", "")
API_KEY = os.environ.get("QUARRY_TEST_API_KEY")
READ_KEY = os.environ.get("QUARRY_TEST_READ_KEY")
#: How long a job may take to reach a state here (a loaded 2-core machine).
STATE_TIMEOUT_S = 30.0


def records(tag: str) -> list:
    """Inline rows unique to a test, so the API's cache never answers for another test."""
    return [
        {"origin": "LAX", "delay": 5, "tag": tag},
        {"origin": "LAX", "delay": -3, "tag": tag},
        {"origin": "SFO", "delay": 12, "tag": tag},
    ]


def spec(tag: str) -> dict:
    return {
        "dataset": {"records": records(tag)},
        "groupBy": ["origin"],
        "metrics": [{"op": "count"}, {"op": "avg", "column": "delay"}],
        "orderBy": [{"column": "origin", "direction": "asc"}],
    }


EXPECTED_ROWS = [
    {"origin": "LAX", "count": 2, "avg_delay": 1},
    {"origin": "SFO", "count": 1, "avg_delay": 12},
]


def wait_for_state(quarry: Quarry, job_id: str, states: set) -> dict:
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while True:
        status = quarry.status(job_id)
        if status["state"] in states or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@unittest.skipUnless(URL, "QUARRY_TEST_URL is not set: run from test/integration/python-client.test.ts")
class AggregationsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.quarry = Quarry(URL or "", api_key=API_KEY)

    def test_aggregate_waits_for_the_result_and_result_reads_it_back(self) -> None:
        answer = self.quarry.aggregate(spec(uuid.uuid4().hex), wait_ms=20_000)
        self.assertEqual(answer["rows"], EXPECTED_ROWS)
        stored = self.quarry.result(answer["resultKey"])
        assert isinstance(stored, dict)
        self.assertEqual(stored["rows"], EXPECTED_ROWS)

    def test_result_in_csv_and_ndjson_is_bytes_of_the_same_rows(self) -> None:
        key = self.quarry.aggregate(spec(uuid.uuid4().hex), wait_ms=20_000)["resultKey"]
        as_csv = self.quarry.result(key, format="csv")
        assert isinstance(as_csv, bytes)
        rows = list(csv.DictReader(io.StringIO(as_csv.decode())))
        self.assertEqual(rows, [{k: str(v) for k, v in r.items()} for r in EXPECTED_ROWS])
        as_ndjson = self.quarry.result(key, format="ndjson")
        assert isinstance(as_ndjson, bytes)
        self.assertEqual([json.loads(line) for line in as_ndjson.decode().splitlines()], EXPECTED_ROWS)
        with self.assertRaises(QuarryError) as caught:
            self.quarry.result(key, format="xlsx")
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "format"))

    def test_aggregate_without_wait_is_a_queued_job_that_completes(self) -> None:
        queued = self.quarry.aggregate(spec(uuid.uuid4().hex))
        self.assertIn(queued["status"], {"queued", "running", "completed"})
        status = wait_for_state(self.quarry, queued["jobId"], {"completed", "failed"})
        self.assertEqual(status["state"], "completed", status)
        self.assertEqual(status["resultKey"], queued["resultKey"])

    def test_aggregate_many_answers_each_spec_in_order_a_bad_one_alone(self) -> None:
        tag = uuid.uuid4().hex
        bad = {"dataset": {"records": records(tag)}, "metrics": [{"op": "avg"}]}
        # chunk_size 2: three requests; the bad spec's field still names its index in the list.
        items = self.quarry.aggregate_many([spec(tag), spec(tag + "b"), bad, spec(tag)], chunk_size=2)
        self.assertEqual([i["status"] for i in items], [202, 202, 400, 202])
        self.assertIsNone(item_error(items[0]))
        error = item_error(items[2])
        assert error is not None
        self.assertEqual((error.code, error.status, error.field), ("QUARRY_ERR_VALIDATION", 400, "items.2.metrics.0.column"))
        first = items[0]["body"]
        self.assertEqual(items[3]["body"]["jobId"], first["jobId"], "identical specs share one job")
        final = wait_for_state(self.quarry, first["jobId"], {"completed", "failed"})
        self.assertEqual(final["state"], "completed")
        stored = self.quarry.result(first["resultKey"])
        assert isinstance(stored, dict)
        self.assertEqual(stored["rows"], EXPECTED_ROWS)
        # Cached now: the envelope itself, as aggregate answers a hit.
        again = self.quarry.aggregate_many([spec(tag)])
        self.assertEqual((again[0]["status"], again[0]["cache"]), (200, "hit"))
        self.assertEqual(again[0]["body"]["rows"], EXPECTED_ROWS)

    def test_a_bad_spec_raises_with_code_status_and_field(self) -> None:
        bad = spec("bad")
        bad["metrics"] = [{"op": "median_of_nothing"}]
        with self.assertRaises(QuarryError) as caught:
            self.quarry.aggregate(bad)
        self.assertEqual(caught.exception.status, 400)
        self.assertTrue(caught.exception.code.startswith("QUARRY_ERR_"), caught.exception.code)
        self.assertIsNotNone(caught.exception.field)

    def test_unknown_job_and_result_are_404(self) -> None:
        with self.assertRaises(QuarryError) as job:
            self.quarry.status("agg-" + "0" * 32)
        self.assertEqual((job.exception.code, job.exception.status), ("QUARRY_ERR_JOB_NOT_FOUND", 404))
        with self.assertRaises(QuarryError) as result:
            self.quarry.result("r" + "0" * 40)
        self.assertEqual(result.exception.status, 404)

    def test_keys_are_checked_a_missing_key_is_401_a_read_key_cannot_enqueue(self) -> None:
        with self.assertRaises(QuarryError) as anonymous:
            Quarry(URL or "").jobs()
        self.assertEqual((anonymous.exception.code, anonymous.exception.status), ("QUARRY_ERR_UNAUTHORIZED", 401))
        with self.assertRaises(QuarryError) as read_only:
            Quarry(URL or "", api_key=READ_KEY).aggregate(spec("read-only"))
        self.assertEqual((read_only.exception.code, read_only.exception.status), ("QUARRY_ERR_FORBIDDEN", 403))

    def test_no_server_is_a_connection_error_with_status_0(self) -> None:
        with self.assertRaises(QuarryError) as caught:
            Quarry("http://127.0.0.1:9", timeout_s=2).status("agg-x")
        self.assertEqual(caught.exception.status, 0)


@unittest.skipUnless(URL and IDLE_URL, "QUARRY_TEST_URL / QUARRY_TEST_IDLE_URL are not set")
class JobsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.quarry = Quarry(URL or "", api_key=API_KEY)
        # The same Redis and tenant, but no worker consumes this API's queue: jobs stay queued.
        self.idle = Quarry(IDLE_URL, api_key=API_KEY)

    def test_cancel_then_retry_runs_the_job_again_under_its_id(self) -> None:
        queued = self.idle.aggregate(spec(uuid.uuid4().hex))
        cancelled = self.idle.cancel(queued["jobId"])
        self.assertEqual(cancelled["state"], "cancelled")
        listed = self.idle.jobs(state="cancelled", type="aggregate")
        self.assertIn(queued["jobId"], [j["jobId"] for j in listed["jobs"]])
        self.assertTrue(all(j["state"] == "cancelled" for j in listed["jobs"]))
        retried = self.idle.retry(queued["jobId"])
        self.assertEqual(retried["jobId"], queued["jobId"])
        self.assertEqual(self.idle.status(queued["jobId"])["state"], "queued")
        self.idle.cancel(queued["jobId"])

    def test_a_completed_job_is_not_retryable(self) -> None:
        done = self.quarry.aggregate(spec(uuid.uuid4().hex))
        self.assertEqual(wait_for_state(self.quarry, done["jobId"], {"completed"})["state"], "completed")
        with self.assertRaises(QuarryError) as caught:
            self.quarry.retry(done["jobId"])
        self.assertEqual(caught.exception.code, "QUARRY_ERR_JOB_NOT_RETRYABLE")
        self.assertEqual(caught.exception.status, 409)

    def test_jobs_pages_by_cursor_newest_first(self) -> None:
        ids = [self.idle.aggregate(spec(uuid.uuid4().hex))["jobId"] for _ in range(3)]
        try:
            seen = []
            page = self.idle.jobs(state="queued", limit=2)
            self.assertEqual(len(page["jobs"]), 2)
            while True:
                seen.extend(j["jobId"] for j in page["jobs"])
                if not page.get("nextCursor"):
                    break
                page = self.idle.jobs(state="queued", limit=2, cursor=page["nextCursor"])
            self.assertEqual([i for i in seen if i in ids], list(reversed(ids)))
        finally:
            for job_id in ids:
                self.idle.cancel(job_id)

    def test_a_bad_filter_names_its_field(self) -> None:
        with self.assertRaises(QuarryError) as caught:
            self.quarry.jobs(state="sleeping")
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "state"))


@unittest.skipUnless(URL, "QUARRY_TEST_URL is not set")
class SearchTest(unittest.TestCase):
    def test_index_then_search(self) -> None:
        quarry = Quarry(URL or "", api_key=API_KEY)
        collection = "py" + uuid.uuid4().hex[:12]
        built = quarry.index(
            collection,
            {
                "documents": [
                    {"id": "1", "title": "Red apples", "body": "Apples grow on trees"},
                    {"id": "2", "title": "Pears", "body": "Green pears and red apples"},
                    {"id": "3", "title": "Plums", "body": "Purple plums"},
                ],
                "idField": "id",
                "fields": ["title", "body"],
                "store": ["title"],
            },
            wait_ms=20_000,
        )
        self.assertEqual(built["status"], "completed", built)
        found = quarry.search(collection, "red apples", k=5)
        self.assertEqual(sorted(h["id"] for h in found["hits"]), ["1", "2"])
        self.assertEqual(found["hits"][0]["fields"]["title"], "Red apples")
        self.assertEqual([h["id"] for h in quarry.search(collection, "plu", prefix=True)["hits"]], ["3"])
        with self.assertRaises(QuarryError) as caught:
            quarry.search(collection, "apples", k=0)
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "k"))

    def test_index_then_query(self) -> None:
        quarry = Quarry(URL or "", api_key=API_KEY)
        collection = "py" + uuid.uuid4().hex[:12]
        built = quarry.index(
            collection,
            {
                "documents": [
                    {"id": "1", "title": "Red apples", "price": 3, "tags": ["fruit"]},
                    {"id": "2", "title": "Green pears and red apples", "price": 5, "tags": ["fruit"]},
                    {"id": "3", "title": "Red cabbage", "price": 2, "tags": ["veg"]},
                ],
                "idField": "id",
                "fields": ["title"],
                "store": ["title"],
                "filterable": ["tags", "price"],
                "sortable": ["price"],
            },
            wait_ms=20_000,
        )
        self.assertEqual(built["status"], "completed", built)
        found = quarry.query(
            collection,
            "red -pears",
            facets=["tags"],
            sort=[{"field": "price", "direction": "desc"}],
            highlight={"fields": ["title"]},
        )
        self.assertEqual([h["id"] for h in found["hits"]], ["1", "3"])
        self.assertEqual(found["facets"], {"tags": {"fruit": 1, "veg": 1}})
        self.assertEqual(found["hits"][0]["highlights"]["title"], "<em>Red</em> apples")
        with self.assertRaises(QuarryError) as caught:
            quarry.query(collection, "red", sort=[{"field": "title"}])
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "sort.0.field"))

    def test_upsert_and_delete_documents(self) -> None:
        quarry = Quarry(URL or "", api_key=API_KEY)
        collection = "py" + uuid.uuid4().hex[:12]
        built = quarry.index(
            collection,
            {
                "documents": [
                    {"id": "1", "title": "Red apples"},
                    {"id": "2", "title": "Green pears"},
                ],
                "idField": "id",
                "fields": ["title"],
                "store": ["title"],
            },
            wait_ms=20_000,
        )
        self.assertEqual(built["status"], "completed", built)
        upserted = quarry.upsert_documents(
            collection, [{"id": "2", "title": "Red pears"}, {"id": "3", "title": "Red plums"}], wait_ms=20_000
        )
        self.assertEqual(upserted["status"], "completed", upserted)
        self.assertGreater(upserted["index"]["version"], built["index"]["version"])
        self.assertEqual(sorted(h["id"] for h in quarry.search(collection, "red")["hits"]), ["1", "2", "3"])
        self.assertEqual(quarry.search(collection, "pears")["hits"][0]["fields"]["title"], "Red pears")
        deleted = quarry.delete_documents(collection, ["1", "nope"], wait_ms=20_000)
        self.assertEqual(deleted["index"]["documents"], 2)
        self.assertEqual(sorted(h["id"] for h in quarry.search(collection, "red")["hits"]), ["2", "3"])
        queued = quarry.delete_documents(collection, ["3"])
        self.assertIn(queued["status"], ("queued", "active", "completed"))
        with self.assertRaises(QuarryError) as caught:
            quarry.upsert_documents(collection, [{"title": "no id"}])
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "documents.0.id"))
        with self.assertRaises(QuarryError) as caught:
            quarry.delete_documents("py-none-" + uuid.uuid4().hex[:8], ["1"])
        self.assertEqual((caught.exception.status, caught.exception.code), (404, "QUARRY_ERR_INDEX_NOT_FOUND"))


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Records every POST (headers, body) and answers 200."""

    received: "queue.Queue[tuple]" = queue.Queue()

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.put((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@unittest.skipUnless(URL, "QUARRY_TEST_URL is not set: run from test/integration/python-client.test.ts")
class WebhookManagementTest(unittest.TestCase):
    """put/list/get/deliveries/delete against the stack, with a real receiver on loopback (the
    node test allows 127.0.0.1 in QUARRY_WEBHOOK_ALLOW): a completed job's delivery arrives
    signed, and the log records it under the id the receiver saw."""

    SECRET = "whsec-python-management-0123456789"

    def setUp(self) -> None:
        self.quarry = Quarry(URL or "", api_key=API_KEY)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.name = f"py-{uuid.uuid4().hex[:8]}"

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def test_put_list_get_deliveries_delete(self) -> None:
        url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        put = self.quarry.put_webhook(self.name, url, ["job.completed"], self.SECRET)
        self.assertEqual((put["name"], put["url"], put["events"]), (self.name, url, ["job.completed"]))
        self.assertNotIn(self.SECRET, json.dumps(put), "the secret is never answered back")
        self.assertIn(self.name, [w["name"] for w in self.quarry.webhooks()])
        self.assertEqual(self.quarry.webhook(self.name)["url"], url)

        job = self.quarry.aggregate(spec(f"hook-{self.name}"), wait_ms=20_000)
        deadline = time.monotonic() + STATE_TIMEOUT_S
        delivered = None
        while delivered is None and time.monotonic() < deadline:
            headers, body = _Receiver.received.get(timeout=STATE_TIMEOUT_S)
            event = json.loads(body)
            if event["resultKey"] == job["resultKey"]:
                delivered = (headers, body, event)
        self.assertIsNotNone(delivered, "the delivery arrived")
        headers, body, event = delivered  # type: ignore[misc]
        self.assertTrue(verify_webhook(self.SECRET, headers, body))
        self.assertEqual((event["type"], event["state"]), ("job.completed", "completed"))
        delivery_id = {k.lower(): v for k, v in headers.items()}["x-quarry-delivery"]
        self.assertEqual(event["id"], delivery_id)

        while time.monotonic() < deadline:
            log = {d["id"]: d for d in self.quarry.webhook_deliveries(self.name, limit=10)}
            if log.get(delivery_id, {}).get("status") == "delivered":
                break
            time.sleep(0.05)
        self.assertEqual(log[delivery_id]["status"], "delivered")
        self.assertEqual(log[delivery_id]["lastStatus"], 200)

        self.quarry.delete_webhook(self.name)
        with self.assertRaises(QuarryError) as caught:
            self.quarry.webhook(self.name)
        self.assertEqual(caught.exception.status, 404)

    def test_a_private_url_is_a_400_naming_url(self) -> None:
        with self.assertRaises(QuarryError) as caught:
            self.quarry.put_webhook(self.name, "http://10.0.0.1/hook", ["job.failed"], self.SECRET)
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "url"))


class WebhookTest(unittest.TestCase):
    SECRET = os.environ.get("QUARRY_TEST_WEBHOOK_SECRET", "")
    BODY = os.environ.get("QUARRY_TEST_WEBHOOK_BODY", "")
    SIGNATURE = os.environ.get("QUARRY_TEST_WEBHOOK_SIGNATURE", "")

    @unittest.skipUnless(SIGNATURE, "no signature from the node test")
    def test_a_signature_made_by_node_crypto_verifies(self) -> None:
        headers = {"X-Quarry-Signature": self.SIGNATURE, "x-quarry-delivery": "dlv_1"}
        self.assertTrue(verify_webhook(self.SECRET, headers, self.BODY.encode()))
        self.assertEqual(sign(self.SECRET, self.BODY, int(self.SIGNATURE[2:].split(",")[0])), self.SIGNATURE)
        self.assertFalse(verify_webhook("another-secret", headers, self.BODY.encode()))
        self.assertFalse(verify_webhook(self.SECRET, headers, self.BODY.encode() + b" "))

    def test_timestamps_outside_the_window_fail(self) -> None:
        body = b'{"id":"dlv_2"}'
        old = int(time.time()) - 600
        self.assertFalse(verify_webhook("s", {"x-quarry-signature": sign("s", body, old)}, body))
        self.assertTrue(verify_webhook("s", {"x-quarry-signature": sign("s", body, old)}, body, tolerance_s=900))
        self.assertFalse(verify_webhook("s", {"x-quarry-signature": sign("s", body, old)}, body, now=old - 301))

    def test_malformed_or_missing_headers_fail(self) -> None:
        body = b"{}"
        for value in ["", "t=abc,v1=00", "v1=00", f"t={int(time.time())}", "garbage"]:
            self.assertFalse(verify_webhook("s", {"x-quarry-signature": value}, body), value)
        self.assertFalse(verify_webhook("s", {}, body))

    def test_a_rotated_secret_passes_with_any_matching_v1(self) -> None:
        body = b'{"id":"dlv_3"}'
        t = int(time.time())
        good = sign("s", body, t).split(",v1=")[1]
        header = f"t={t},v1={'0' * 64},v1={good}"
        self.assertTrue(verify_webhook("s", {"x-quarry-signature": header}, body))


if __name__ == "__main__":
    unittest.main()
