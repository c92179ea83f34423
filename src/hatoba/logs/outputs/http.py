"""HTTP output: each batch is one POST of newline-delimited JSON (``application/x-ndjson``).

2xx: delivered. 408, 429, 5xx, or no answer: the batch is sent again after a back-off.
Any other 4xx: the receiver will never take it; the batch is dropped and counted.
"""

from __future__ import annotations

import httpx

from hatoba.logs.outputs.base import Batch, OutputRejected, OutputUnavailable
from hatoba.logs.outputs.events import json_line
from hatoba.model.log_outputs import HttpOutput

_RETRY_STATUSES = frozenset({408, 425, 429})


class HttpClient:
    def __init__(self, spec: HttpOutput, *, transport: httpx.AsyncBaseTransport | None = None):
        self.spec = spec
        self.name = spec.name
        self._client = httpx.AsyncClient(
            timeout=spec.timeout, verify=spec.tls_verify, transport=transport
        )

    async def send(self, batch: Batch) -> None:
        body = b"".join(json_line(e) for e in batch.events)
        headers = {
            "Content-Type": "application/x-ndjson",
            "X-Hatoba-Chunk": batch.chunk_id,
            **self.spec.headers,
        }
        try:
            resp = await self._client.post(self.spec.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise OutputUnavailable(f"POST {self.spec.url}: {exc!r}") from exc
        if resp.is_success:
            return
        detail = f"POST {self.spec.url}: HTTP {resp.status_code} {resp.text[:200]!r}"
        if resp.status_code >= 500 or resp.status_code in _RETRY_STATUSES:
            raise OutputUnavailable(detail)
        raise OutputRejected(detail)

    async def close(self) -> None:
        await self._client.aclose()
