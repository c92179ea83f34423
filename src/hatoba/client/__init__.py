"""Typed HTTP client for hatoba's API (see ``hatoba.api.routes`` for the endpoints)."""

from hatoba.client.discovery import Endpoint, from_environment, running_server
from hatoba.client.errors import ApiError, ClientError, ServerUnavailable
from hatoba.client.http import Failure, HatobaClient, RunResult
from hatoba.client.logs import LogLine

__all__ = [
    "ApiError",
    "ClientError",
    "Endpoint",
    "Failure",
    "HatobaClient",
    "LogLine",
    "RunResult",
    "ServerUnavailable",
    "from_environment",
    "running_server",
]
