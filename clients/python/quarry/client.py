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
from typing import Any, Dict, Mapping, Optional, Union

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

    def search(self, collection: str, q: str, **options: Any) -> JSONObject:
        """Ranked hits: ``{"hits": [{"id", "score", "fields"}], "total", "version", "tookMs"}``.
        Options: ``k``, ``mode`` (``"and"`` / ``"or"``), ``prefix`` (bool)."""
        query: Dict[str, Any] = {"q": q}
        for name, value in options.items():
            query[name] = ("true" if value else "false") if isinstance(value, bool) else value
        return self._json("GET", f"/v1/indexes/{_segment(collection)}/search", query=query)

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


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _error_of(status: int, raw: bytes) -> QuarryError:
    try:
        error = json.loads(raw)["error"]
        return QuarryError(str(error["code"]), str(error.get("message", "")), status, error.get("field"))
    except (ValueError, KeyError, TypeError):
        text = raw[:200].decode("utf8", "replace")
        return QuarryError("QUARRY_ERR_INTERNAL" if status >= 500 else "QUARRY_ERR_BAD_REQUEST", text, status)
