"""``Quarry``: the HTTP API as Python calls (standard library only).

Every call returns the API's JSON as dicts and lists (bytes for non-JSON results) and raises
``QuarryError`` (code, HTTP status, field) for any error answer.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import QuarryError

JSONObject = Dict[str, Any]

#: Seconds a call waits for the API beyond any ``wait_ms`` it asked the API to wait.
DEFAULT_TIMEOUT_S = 30.0
#: The client's own code when no answer came (connection refused, reset, timed out): status 0.
CONNECTION_ERROR = "QUARRY_ERR_CLIENT_CONNECTION"


class Quarry:
    """A Quarry API at ``url`` (e.g. ``http://localhost:3000``), with an optional API key."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ aggregations and results

    def aggregate(self, spec: Mapping[str, Any], wait_ms: Optional[int] = None) -> JSONObject:
        """Enqueues an aggregation. With ``wait_ms`` the API waits up to that long: the result
        envelope (``rows``, ``resultKey``…) when done, else the queued job (``jobId``,
        ``status``)."""
        return self._json("POST", "/v1/aggregations", body=spec, query={"wait": wait_ms}, wait_ms=wait_ms)

    def aggregate_many(self, specs: Sequence[Mapping[str, Any]], chunk_size: int = 100) -> List[JSONObject]:
        """Enqueues many aggregations with ``POST /v1/aggregations/batch``, ``chunk_size`` specs
        per request (at most the server's ``QUARRY_MAX_BATCH_ITEMS``, default 100). Answers one
        item per spec, in order, as ``aggregate`` would answer it alone: ``{"status": 202,
        "cache": "miss", "body": {"jobId", "resultKey", "status", "links"}}``, ``{"status": 200,
        "cache": "hit", "body": <envelope>}``, or ``{"status": 400, "body": {"error": {...}}}``
        (``field`` under ``items.<i>``, ``i`` the spec's index in ``specs``). A bad spec does not
        raise and does not stop the others (``item_error(item)`` gives its ``QuarryError``); a
        request the API refuses as a whole (auth, body size) raises."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        answers: List[JSONObject] = []
        for start in range(0, len(specs), chunk_size):
            chunk = list(specs[start : start + chunk_size])
            items = self._json("POST", "/v1/aggregations/batch", body={"items": chunk})["items"]
            for n, item in enumerate(items):
                error = item.get("body", {}).get("error") if item.get("status", 0) >= 400 else None
                field = error.get("field") if isinstance(error, dict) else None
                prefix = f"items.{n}"
                if start and isinstance(field, str) and (field == prefix or field.startswith(prefix + ".")):
                    error["field"] = f"items.{start + n}{field[len(prefix):]}"
                answers.append(item)
        return answers

    def result(self, key: str, format: Optional[str] = None) -> Union[JSONObject, bytes]:
        """A stored result: the JSON envelope, or the raw bytes of another ``format``
        (``csv``, ``ndjson``, ``arrow`` where the server supports them)."""
        path = f"/v1/results/{_segment(key)}"
        if format is None or format == "json":
            query = {} if format is None else {"format": format}
            return self._json("GET", path, query=query)
        return self._request("GET", path, query={"format": format}, accept="*/*")[1]

    # ------------------------------------------------------------------ jobs

    def status(self, job_id: str) -> JSONObject:
        """A job's status record: ``state``, ``progress``, ``attempts``, ``timings``, ``error``…"""
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}")

    def jobs(
        self,
        state: Optional[str] = None,
        type: Optional[str] = None,
        error_code: Optional[str] = None,
        since: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        all: Optional[bool] = None,
    ) -> JSONObject:
        """Job history, newest first: ``{"jobs": [status records], "nextCursor": str | None}``.
        Pass ``nextCursor`` back as ``cursor`` for the next page."""
        query = {
            "state": state,
            "type": type,
            "errorCode": error_code,
            "since": since,
            "limit": limit,
            "cursor": cursor,
            "all": None if all is None else ("true" if all else "false"),
        }
        return self._json("GET", "/v1/jobs", query=query)

    def retry(self, job_id: str) -> JSONObject:
        """Runs a failed or cancelled job again under its id (202: ``jobId``, ``status``)."""
        return self._json("POST", f"/v1/jobs/{_segment(job_id)}/retry")

    def cancel(self, job_id: str) -> JSONObject:
        """Cancels a queued or running job."""
        return self._json("DELETE", f"/v1/jobs/{_segment(job_id)}")

    # ------------------------------------------------------------------ search

    def index(self, collection: str, request: Mapping[str, Any], wait_ms: Optional[int] = None) -> JSONObject:
        """Builds a new version of ``collection``'s index (``documents`` inline or a ``source``
        file). With ``wait_ms``: ``{"status": "completed", "index": {...}}`` once it is live."""
        return self._json(
            "POST", f"/v1/indexes/{_segment(collection)}", body=request, query={"wait": wait_ms}, wait_ms=wait_ms
        )

    def upsert_documents(
        self, collection: str, documents: Sequence[Mapping[str, Any]], wait_ms: Optional[int] = None
    ) -> JSONObject:
        """Adds documents to ``collection`` or replaces those of the same id: a build of the next
        version from the live one (its settings), answered like :meth:`index`. Only the changed
        documents travel. 404 for an unknown collection, 409 ``QUARRY_ERR_INDEX_NO_DOCUMENTS`` for a
        version built before versions kept their documents (rebuild it once)."""
        return self._json(
            "POST",
            f"/v1/indexes/{_segment(collection)}/documents",
            body={"documents": list(documents)},
            query={"wait": wait_ms},
            wait_ms=wait_ms,
        )

    def delete_documents(
        self, collection: str, ids: Sequence[Union[str, int, float]], wait_ms: Optional[int] = None
    ) -> JSONObject:
        """Removes the documents of ``ids`` from ``collection`` (unknown ids are ignored); answered
        like :meth:`upsert_documents`."""
        return self._json(
            "DELETE",
            f"/v1/indexes/{_segment(collection)}/documents",
            body={"ids": list(ids)},
            query={"wait": wait_ms},
            wait_ms=wait_ms,
        )

    def search(self, collection: str, q: str, **options: Any) -> JSONObject:
        """Ranked hits: ``{"hits": [{"id", "score", "fields"}], "total", "version", "tookMs"}``.
        Options: ``k``, ``mode`` (``"and"`` / ``"or"``), ``prefix`` (bool)."""
        query: Dict[str, Any] = {"q": q}
        for name, value in options.items():
            query[name] = ("true" if value else "false") if isinstance(value, bool) else value
        return self._json("GET", f"/v1/indexes/{_segment(collection)}/search", query=query)

    def query(self, collection: str, q: str = "", **body: Any) -> JSONObject:
        """The full query (POST .../search): ``{"hits", "total", "facets"?, "version", "tookMs"}``.
        Body fields as keywords: ``k``, ``offset``, ``mode``, ``prefix``, ``filter``, ``facets``,
        ``sort``, ``highlight``, ``snippet``, ``typos``; ``q`` takes phrases and ``-negation``."""
        return self._json("POST", f"/v1/indexes/{_segment(collection)}/search", body={"q": q, **body})

    # ------------------------------------------------------------------ webhooks

    def put_webhook(self, name: str, url: str, events: Sequence[str], secret: str) -> JSONObject:
        """Creates or replaces the webhook ``name``: signed POSTs of ``events`` (``job.completed``,
        ``job.failed``, ``job.cancelled``, ``index.live``) to ``url``. Answers it (the secret only
        by its last characters)."""
        body = {"url": url, "events": list(events), "secret": secret}
        return self._json("PUT", f"/v1/webhooks/{_segment(name)}", body=body)

    def webhook(self, name: str) -> JSONObject:
        """One webhook; a ``QuarryError`` with status 404 when there is none of that name."""
        return self._json("GET", f"/v1/webhooks/{_segment(name)}")

    def webhooks(self) -> List[JSONObject]:
        """The tenant's webhooks."""
        return list(self._json("GET", "/v1/webhooks").get("webhooks", []))

    def delete_webhook(self, name: str) -> None:
        """Deletes a webhook and drops its pending deliveries (404 when there is none)."""
        self._request("DELETE", f"/v1/webhooks/{_segment(name)}")

    def webhook_deliveries(self, name: str, limit: Optional[int] = None) -> List[JSONObject]:
        """A webhook's newest deliveries first: ``id``, ``type``, ``jobId``, ``status``
        (``pending``, ``delivered``, ...), ``attempts``, ``lastStatus``, ``lastBody``, ..."""
        answer = self._json("GET", f"/v1/webhooks/{_segment(name)}/deliveries", query={"limit": limit})
        return list(answer.get("deliveries", []))

    # ------------------------------------------------------------------ transport

    def _json(
        self,
        method: str,
        path: str,
        body: Optional[Mapping[str, Any]] = None,
        query: Optional[Mapping[str, Any]] = None,
        wait_ms: Optional[int] = None,
    ) -> JSONObject:
        _, raw = self._request(method, path, body=body, query=query, wait_ms=wait_ms)
        return json.loads(raw) if raw else {}

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[Mapping[str, Any]] = None,
        query: Optional[Mapping[str, Any]] = None,
        wait_ms: Optional[int] = None,
        accept: str = "application/json",
    ) -> "tuple[int, bytes]":
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        url = self.url + path + (("?" + urllib.parse.urlencode(params)) if params else "")
        headers = {"accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.api_key is not None:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        timeout = self.timeout_s + (wait_ms or 0) / 1000
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            raise _error_of(error.code, error.read()) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise QuarryError(CONNECTION_ERROR, f"{method} {url}: {reason}", 0) from error


def item_error(item: Mapping[str, Any]) -> Optional[QuarryError]:
    """The ``QuarryError`` of an ``aggregate_many`` item that failed; None for a 200 or 202."""
    status = int(item.get("status", 0))
    if status < 400:
        return None
    return _error_of(status, json.dumps(item.get("body", {})).encode())


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _error_of(status: int, raw: bytes) -> QuarryError:
    try:
        error = json.loads(raw)["error"]
        return QuarryError(str(error["code"]), str(error.get("message", "")), status, error.get("field"))
    except (ValueError, KeyError, TypeError):
        text = raw[:200].decode("utf8", "replace")
        return QuarryError("QUARRY_ERR_INTERNAL" if status >= 500 else "QUARRY_ERR_BAD_REQUEST", text, status)
