"""The HTTP API (FastAPI): slates, feedback, health, readiness, metrics.

| method, path | answers |
|---|---|
| ``POST /slate`` | ``{user_id, history?}`` -> tracks, per-slot propensities, arm, version, request id |
| ``POST /feedback`` | ``{request_id, position, ms_played, skipped, saved, streamed?}`` -> 202 |
| ``GET /healthz`` | 200 while the process answers (liveness) |
| ``GET /readyz`` | 200 once every arm's alias has a loaded policy, else 503 with the reasons |
| ``GET /metrics`` | Prometheus text format |

Bad requests get a 4xx naming the field (422); an unknown listener is a cold start, not an
error; an arm whose policy is not loaded, or a full queue, is a 503.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.contract import MAX_ID, STREAM_THRESHOLD_MS
from components.params import Params
from components.serve.batcher import Overloaded
from components.serve.service import NotReady, Service, SlateRequest

log = logging.getLogger("encore.serve.app")
Id = Annotated[int, Field(ge=0, lt=MAX_ID)]


class SlateIn(BaseModel):
    """A slate request."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id = Field(description="the listener (unknown ids are served as cold starts)")
    history: list[Id] | None = Field(
        default=None,
        description="recent track ids, most recent last; omitted: the online store's recent plays",
    )


class SlateOut(BaseModel):
    """A served slate (also written to the impression log)."""

    request_id: str = Field(description="key of this slate for POST /feedback (32 hex digits)")
    user_id: int
    tracks: list[int] = Field(description="k distinct track ids, slot 0 first")
    propensities: list[float] = Field(
        description="P(this track in this slot | the slots above), under exactly what was served"
    )
    arm: str
    alias: str = Field(description="the registry alias the arm serves")
    policy_version: int = Field(description="the registered version behind the alias")
    policy_id: int = Field(
        description="the log's policy_id: experiment * 10**6 + (arm + 1) * 10**4 + version"
    )
    experiment_id: int
    cold_start: bool = Field(description="the online store had no features for this listener")
    served_at: str = Field(description="UTC time the slate was decoded (ISO 8601)")


class FeedbackIn(BaseModel):
    """What the listener did with one slot of a served slate."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(pattern="^[0-9a-f]{32}$", description="the slate's request_id")
    position: int = Field(ge=0, lt=1000, description="0-based slot")
    ms_played: int = Field(ge=0, le=86_400_000, description="milliseconds played (0: not played)")
    skipped: bool = Field(default=False, description="started, stopped before 30 s")
    saved: bool = Field(default=False, description="saved to the library")
    streamed: bool | None = Field(
        default=None, description="played >= 30 s; derived from ms_played when omitted"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "FeedbackIn":
        streamed = self.ms_played >= STREAM_THRESHOLD_MS
        if self.streamed is not None and self.streamed != streamed:
            raise ValueError(
                f"streamed={self.streamed} contradicts ms_played={self.ms_played} (a stream is >= 30 s)"
            )
        if self.skipped and streamed:
            raise ValueError(f"skipped with ms_played={self.ms_played}: a skip stops before 30 s")
        self.streamed = streamed
        return self


def create_app(params: Params, features_dir: Path, log_dir: Path, tracking_uri: str) -> FastAPI:
    """The FastAPI app; the service starts with uvicorn's lifespan and stops (flushing) with it."""
    service = Service(params, features_dir, log_dir, tracking_uri)
    metrics, max_history = service.metrics, params.serve.max_history

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import asyncio

        service.start(asyncio.get_running_loop())
        yield
        service.stop()

    app = FastAPI(title="Encore policy service", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.errors.labels("invalid_request").inc()
        return _error(422, "; ".join(_field_error(e) for e in exc.errors()), jsonable_encoder(exc.errors()))

    @app.post("/slate", response_model=SlateOut, openapi_extra=_body_schema(SlateIn))
    async def slate(request: Request) -> Response:
        # validated by pydantic-core straight from the bytes: the same schema and messages as a
        # typed body parameter, at a third of FastAPI's per-request cost (the hot path)
        t0 = time.perf_counter()
        try:
            body = SlateIn.model_validate_json(await request.body())
        except ValidationError as exc:
            metrics.errors.labels("invalid_request").inc()
            errors = [e | {"loc": ("body", *e["loc"])} for e in exc.errors()]
            return _error(422, "; ".join(_field_error(e) for e in errors), jsonable_encoder(errors))
        if body.history is not None and len(body.history) > max_history:
            metrics.errors.labels("invalid_request").inc()
            return _error(422, f"history: {len(body.history)} ids, at most {max_history} (serve.max_history)")
        try:
            result = await service.batcher.submit(SlateRequest(body.user_id, body.history))
        except (NotReady, Overloaded) as exc:
            metrics.errors.labels("not_ready" if isinstance(exc, NotReady) else "overloaded").inc()
            return _error(503, str(exc))
        except Exception:  # noqa: BLE001 - logged by the batcher; the client gets a 500 without internals
            metrics.errors.labels("internal").inc()
            return _error(500, "internal error while serving the slate (see the service log)")
        metrics.latency.labels("slate").observe(time.perf_counter() - t0)
        return Response(json.dumps(result), media_type="application/json")

    @app.post("/feedback", status_code=202)
    async def feedback(body: FeedbackIn) -> dict:
        t0 = time.perf_counter()
        outcome = {k: getattr(body, k) for k in ("streamed", "ms_played", "skipped", "saved")}
        service.record_feedback(body.request_id, body.position, outcome)
        metrics.latency.labels("feedback").observe(time.perf_counter() - t0)
        return {"accepted": True}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, detail = service.readiness()
        return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _body_schema(model: type[BaseModel]) -> dict:
    """OpenAPI request body of a route that validates its body itself."""
    schema = {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
    return {"requestBody": {"required": True, "content": {"application/json": schema}}}


def _field_error(e: dict) -> str:
    loc = [str(p) for p in e.get("loc", ()) if p != "body"]
    return f"{'.'.join(loc) or 'body'}: {e.get('msg', 'invalid')}"


def _error(status: int, message: str, detail: list | None = None) -> JSONResponse:
    body = {"error": message} | ({"detail": detail} if detail is not None else {})
    return JSONResponse(body, status_code=status)
