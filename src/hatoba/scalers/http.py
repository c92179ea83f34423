"""A number from an HTTP JSON endpoint, and a Prometheus instant query. One
``httpx.AsyncClient`` per source (keep-alive across polls)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from hatoba.scalers.base import Connected, MetricReading, ResultError, as_number
from hatoba.scalers.spec import PathPart, parse_json_path

_BODY_SHOWN = 200


def _split_auth(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """The URL without its userinfo, and basic auth from it (if any)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=host)), auth


class _HttpSource(Connected[httpx.AsyncClient]):
    def __init__(
        self, url: str, *, headers: Mapping[str, str], timeout: float = 5.0, **kw: Any
    ) -> None:
        self.url, self._auth = _split_auth(url)
        super().__init__(self.url, **kw)
        self._headers = dict(headers)
        self._timeout = timeout

    async def _connect(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._timeout,
            headers={"Accept": "application/json", **self._headers},
            auth=self._auth,
            follow_redirects=True,
        )

    async def _disconnect(self, client: httpx.AsyncClient) -> None:
        await client.aclose()

    def _json(self, response: httpx.Response, *, allow_error_status: bool = False) -> Any:
        if response.status_code >= 400 and not allow_error_status:
            raise ResultError(
                f"HTTP {response.status_code} from {self.url}: {_snippet(response.text)}"
            )
        try:
            return response.json()
        except ValueError as exc:
            status, body = response.status_code, _snippet(response.text)
            raise ResultError(f"HTTP {status} from {self.url} is not JSON: {body}") from exc


class HttpJsonSource(_HttpSource):
    """GET the URL, parse JSON, follow ``jsonPath``; numbers and numeric strings count."""

    kind = "http"

    def __init__(self, url: str, json_path: str, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.json_path = json_path
        self._path = parse_json_path(json_path)

    async def _measure(self, client: httpx.AsyncClient) -> MetricReading:
        body = self._json(await client.get(self.url))
        value = extract(body, self._path, self.json_path)
        return self.reading(value)


def extract(body: Any, path: tuple[PathPart, ...], shown: str) -> float:
    """The number at ``path`` in ``body``; ``ResultError`` naming where it went wrong."""
    node = body
    walked = "$"
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = f"a list of {len(node)}" if isinstance(node, list) else type(node).__name__
                raise ResultError(f"jsonPath {shown}: {walked} is {size}, no index [{part}]")
            node = node[part]
            walked += f"[{part}]"
        else:
            if not isinstance(node, dict):
                raise ResultError(
                    f"jsonPath {shown}: {walked} is {_json_type(node)}, not an object"
                )
            if part not in node:
                raise ResultError(f"jsonPath {shown}: {walked} has no field {part!r}")
            node = node[part]
            walked += f".{part}"
    if isinstance(node, str):
        with contextlib.suppress(ValueError):
            node = float(node)
    return as_number(node, f"jsonPath {shown} value")


class PrometheusSource(_HttpSource):
    """``GET <url>/api/v1/query?query=...``: exactly one sample (a one-series vector or a
    scalar). No samples is an error unless ``emptyAsZero``; several series is an error
    (aggregate with ``sum(...)``)."""

    kind = "prometheus"

    def __init__(self, url: str, query: str, empty_as_zero: bool = False, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.endpoint = self.url.rstrip("/") + "/api/v1/query"
        self.query = query
        self.empty_as_zero = empty_as_zero

    async def _measure(self, client: httpx.AsyncClient) -> MetricReading:
        response = await client.get(self.endpoint, params={"query": self.query})
        body = self._json(response, allow_error_status=True)
        if not isinstance(body, dict) or "status" not in body:
            raise ResultError(
                f"HTTP {response.status_code} from {self.endpoint} is not a Prometheus answer: "
                f"{_snippet(response.text)}"
            )
        if body["status"] != "success":
            kind = body.get("errorType", "error")
            raise ResultError(f"prometheus query failed: {kind}: {body.get('error', '?')}")
        data = body.get("data") or {}
        result_type, result = data.get("resultType"), data.get("result")
        if result_type == "scalar" and isinstance(result, list):
            return self.reading(_sample_value(result), samples=1)
        if result_type != "vector" or not isinstance(result, list):
            raise ResultError(
                f"prometheus query returned a {result_type}; it must be an instant vector "
                "with one series, or a scalar"
            )
        if not result:
            if self.empty_as_zero:
                return self.reading(0, samples=0)
            raise ResultError(
                "prometheus query returned no samples (set emptyAsZero if none means 0)"
            )
        if len(result) > 1:
            raise ResultError(
                f"prometheus query returned {len(result)} series; it must return one "
                "(aggregate it, e.g. sum(...))"
            )
        sample = result[0] if isinstance(result[0], dict) else {}
        return self.reading(_sample_value(sample.get("value")), samples=1)


def _sample_value(pair: Any) -> float:
    if not isinstance(pair, list) or len(pair) != 2:
        raise ResultError(f"prometheus sample {pair!r} is not [time, value]")
    try:
        value = float(pair[1])
    except (TypeError, ValueError) as exc:
        raise ResultError(f"prometheus sample value {pair[1]!r} is not a number") from exc
    return as_number(value, "prometheus sample value")


def _json_type(node: Any) -> str:
    if isinstance(node, list):
        return "a list"
    return "null" if node is None else type(node).__name__


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SHOWN else text[:_BODY_SHOWN] + "..."
