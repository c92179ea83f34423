"""The REST API (FastAPI, OpenAPI at /openapi.json, docs at /docs)."""
