"""Serve a flow over HTTP: ``tandem serve FLOW`` or :func:`create_app` in your own ASGI server.

Endpoints: ``POST /v1/run``, ``POST /v1/stream`` (server-sent events), ``GET /health``,
``GET /openapi.json``, and OpenAI's ``POST /v1/chat/completions`` and ``GET /v1/models``
(:mod:`tandemlm.service.openai_api`). Starlette and uvicorn are imported only when a service
is built.
"""

from tandemlm.service.app import ServiceSettings, create_app
from tandemlm.service.server import ServerThread, serve

__all__ = ["ServerThread", "ServiceSettings", "create_app", "serve"]
