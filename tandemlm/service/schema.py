"""Request/response models of the HTTP service and its OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tandemlm.flows.compiler import MAX_INPUT_CHARS

THREAD_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"


class RunRequest(BaseModel):
    """Body of ``POST /v1/run`` and ``POST /v1/stream``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    thread_id: str | None = Field(None, pattern=THREAD_PATTERN)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        return value


class ErrorBody(BaseModel):
    """Every error response: a machine-readable ``error`` kind and a human ``message``."""

    error: str
    message: str
    request_id: str


_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["flow", "run_id", "answer", "path", "degraded", "llm_called", "request_id"],
    "properties": {
        "flow": {"type": "string"},
        "run_id": {"type": "string"},
        "request_id": {"type": "string"},
        "answer": {"type": "string"},
        "answered_by": {"type": ["string", "null"]},
        "path": {"type": "array", "items": {"type": "string"}},
        "steps": {"type": "array", "items": {"type": "object"},
                  "description": "The run's ledger: one entry per node execution."},
        "decisions": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
        "models": {"type": "object"},
        "seconds": {"type": "number"},
        "degraded": {"type": "boolean"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "vars": {"type": "object", "description": "Every node output except the answer."},
        "large_models": {"type": "array", "items": {"type": "string"},
                         "description": "Large models called (role other than slm, or local: false)."},
        "llm_called": {"type": "boolean",
                       "description": "A large model was called (the one definition of escalation)."},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON", 413: "Body too large", 415: "Not JSON", 422: "Invalid request",
        502: "A node failed", 503: "Model unavailable or service busy",
    }
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return {str(c): {"description": text[c], **ref} for c in codes}


def openapi(flow: str, description: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service running ``flow``."""
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}},
    }
    request_id = {
        "name": "X-Request-ID", "in": "header", "required": False,
        "description": "Echoed back and recorded on the run span (tandem.request_id).",
        "schema": {"type": "string", "maxLength": 128},
    }
    from tandemlm.service.openai_protocol import openapi_paths

    openai_paths, openai_schemas = openapi_paths(flow)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"tandemlm flow '{flow}'", "version": "1", "description": description},
        "paths": {
            "/v1/run": {"post": {
                "summary": "Run the flow on one question",
                "parameters": [request_id], "requestBody": body,
                "responses": {
                    "200": {"description": "The run result", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/RunResult"}}}},
                    **_errors(400, 413, 415, 422, 502, 503),
                },
            }},
            "/v1/stream": {"post": {
                "summary": "Run the flow, streaming node, token and result events (SSE)",
                "parameters": [request_id], "requestBody": body,
                "responses": {
                    "200": {"description": "Server-sent events: node, token, message, result, error",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    **_errors(400, 413, 415, 422, 503),
                },
            }},
            "/health": {"get": {"summary": "Liveness and load", "responses": {"200": {
                "description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
                "description": "OpenAPI document"}}}},
            **openai_paths,
        },
        "components": {"schemas": {
            "RunRequest": RunRequest.model_json_schema(),
            "ErrorBody": ErrorBody.model_json_schema(),
            "RunResult": _RESULT_SCHEMA,
            **openai_schemas,
        }},
    }
