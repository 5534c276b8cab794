"""FastAPI app: a thin HTTP shell over :class:`journeyrec.serving.service.Service`.

Endpoints: ``POST /v1/recommendations``, ``GET /v1/items/{id}/similar``,
``GET /v1/items/{id}/complements``, ``GET /healthz`` (process up), ``GET /readyz`` (bundles
loaded and warmed up), ``GET /metrics`` (Prometheus text), ``/docs`` and ``/openapi.json``.

Validation is Pydantic's, with the limits of ``LimitsConfig`` (events per request, k, filter
values, body bytes): bad requests get 413 or 422 with a message naming the field and the limit,
unknown item ids are ignored and reported in ``warnings``. Handlers are ``async`` and run the
recommendation in the event loop: it takes about a millisecond of CPU, less than a hand-off to
a thread pool would cost.
"""

# no `from __future__ import annotations`: FastAPI reads the (locally defined) body model from the annotation
import json
import logging
import time
import uuid
from datetime import datetime
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.serving.observability import LOGGER_NAME
from journeyrec.serving.request import MAX_MS, MIN_MS, Context, Event, RecommendRequest, RecommendResult
from journeyrec.serving.service import Service
from journeyrec.serving.settings import CONTEXT_TYPES

__all__ = ["create_app"]

log = logging.getLogger(LOGGER_NAME)

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
ContextType = Literal[CONTEXT_TYPES]  # type: ignore[valid-type]
ItemId = Union[StrictStr, StrictInt]
Scalar = Union[StrictBool, StrictStr, StrictInt, StrictFloat]
EpochMs = Annotated[StrictInt, Field(ge=MIN_MS, le=MAX_MS)]  # bounded: larger integers are not times


class _TooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException, so FastAPI answers it as such (413)."""


class BodySizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 (by Content-Length or while streaming)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes (limits.max_body_bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(send)
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(413, f"request body larger than {self.max_bytes} bytes (limits.max_body_bytes)")
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)


def _models(limits: Any) -> tuple[type[BaseModel], type[BaseModel]]:
    """Request/response schemas with this server's limits (they appear in the OpenAPI docs)."""

    class EventIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        item_id: Optional[ItemId] = Field(None, description="item id as the dataset spells it (search/newsletter events have none)")
        event_type: EventType = "view"
        channel: Channel = "unknown"
        timestamp: Optional[Union[EpochMs, datetime]] = Field(None, description="epoch milliseconds or ISO 8601")

    class RangeIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        min: Optional[Union[StrictInt, StrictFloat]] = None
        max: Optional[Union[StrictInt, StrictFloat]] = None

    FilterValue = Union[Scalar, List[Scalar], RangeIn]

    class ContextIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        type: ContextType = "home"
        item_id: Optional[ItemId] = None
        category: Optional[StrictStr] = Field(None, max_length=500)

    class RecommendIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        events: List[EventIn] = Field(..., max_length=limits.max_events, description="recent events, oldest first")
        k: StrictInt = Field(10, ge=1, le=limits.max_k)
        filters: Dict[str, FilterValue] = Field(default_factory=dict, max_length=20,
                                                description="equality, any-of list, or {min, max} range per catalogue attribute")
        consent: StrictBool = True
        user_id: Optional[StrictStr] = Field(None, max_length=256, description="pseudonymised on entry, never stored")
        context: ContextIn = Field(default_factory=ContextIn)
        now: Optional[Union[EpochMs, datetime]] = Field(None, description="request time for replays (default: now)")

    class ItemOut(BaseModel):
        item_id: str
        score: float
        reason: str

    class RecommendOut(BaseModel):
        items: List[ItemOut]
        variant: Optional[str]
        bundle_version: str
        warnings: List[str]
        intent: Optional[float] = Field(None, description="P(purchase in this session); only with an intent model")

    return RecommendIn, RecommendOut


def _ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            return int(value.timestamp() * 1000)
        except (OverflowError, OSError) as exc:  # a naive date at the edge of the calendar in the local time zone
            raise ValueError(f"time {value.isoformat()} cannot be converted to epoch milliseconds ({exc})") from exc
    return int(value)


def _filters(filters: Dict[str, Any], max_values: int) -> Dict[str, Any]:
    out = {}
    for name, value in filters.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_none=True)
        elif isinstance(value, list) and len(value) > max_values:
            raise ValueError(f"filter '{name}' has {len(value)} values; at most {max_values} (limits.max_filter_values)")
        out[name] = value
    return out


def _payload(result: RecommendResult, with_intent: bool) -> bytes:
    body: dict[str, Any] = {
        "items": [{"item_id": r.item_id, "score": round(r.score, 6), "reason": r.reason} for r in result.items],
        "variant": result.variant,
        "bundle_version": result.bundle_version,
        "warnings": result.warnings,
    }
    if with_intent:
        body["intent"] = result.intent
    return json.dumps(body).encode()


def create_app(service: Service) -> FastAPI:
    limits = service.limits
    RecommendIn, RecommendOut = _models(limits)
    app = FastAPI(
        title="journeyrec",
        description="Session-based recommendations with filters, repeat-purchase rules, boosts, diversity, "
        "exploration and reasons; a non-personal path for requests without consent.",
        version="1",
    )
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    metrics = service.metrics

    def finish(endpoint: str, status: int, started: float, fields: dict[str, Any] | None = None) -> None:
        elapsed = time.perf_counter() - started
        metrics.observe(endpoint, status, elapsed)
        line = {"endpoint": endpoint, "status": status, "latency_ms": round(elapsed * 1000, 3), **(fields or {})}
        log.info("request", extra={"fields": line})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the body is echoed by FastAPI's default handler; ours names fields and problems only
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        path = request.url.path
        endpoint = next((f"/v1/items/{{id}}/{kind}" for kind in ("similar", "complements") if path.endswith(kind)), path)
        metrics.observe(endpoint, 422, 0.0)
        return JSONResponse({"detail": errors}, status_code=422)

    @app.post("/v1/recommendations", response_model=RecommendOut, responses={413: {}, 422: {}})
    async def recommendations(body: RecommendIn) -> Response:  # type: ignore[valid-type]
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        try:
            request = RecommendRequest(
                events=[Event(None if e.item_id is None else str(e.item_id), e.event_type, e.channel, _ms(e.timestamp))
                        for e in body.events] if body.consent else [],
                k=body.k,
                filters=_filters(body.filters, limits.max_filter_values),
                consent=body.consent,
                user_id=body.user_id if body.consent else None,
                context=Context(body.context.type, None if body.context.item_id is None else str(body.context.item_id),
                                body.context.category),
                now_ms=_ms(body.now),
            )
            del body  # nothing of the raw request outlives this line but the fields above
            result, fields = service.recommend(request, request_id)
        except ValueError as exc:
            finish("/v1/recommendations", 422, started, {"request_id": request_id, "error": type(exc).__name__})
            return JSONResponse({"detail": str(exc)}, status_code=422)
        finish("/v1/recommendations", 200, started, fields)
        return Response(_payload(result, service.default.encoder.has_intent), media_type="application/json")

    def item_endpoint(kind: str):
        async def handler(item_id: str, k: int = Query(10, ge=1, le=limits.max_k),
                          filters: Optional[str] = Query(None, description="JSON object, same grammar as the POST body")) -> Response:
            started = time.perf_counter()
            endpoint = f"/v1/items/{{id}}/{kind}"
            try:
                parsed = json.loads(filters) if filters else None
                if parsed is not None and not isinstance(parsed, dict):
                    raise ValueError("filters must be a JSON object")
                result = getattr(service, kind)(item_id, k, parsed)
            except KeyError as exc:
                finish(endpoint, 404, started)
                return JSONResponse({"detail": str(exc.args[0])}, status_code=404)
            except ValueError as exc:  # includes FilterError and JSON errors
                finish(endpoint, 422, started)
                return JSONResponse({"detail": f"invalid filters: {exc}"}, status_code=422)
            result.variant = service.arm_for_items().variant.name
            finish(endpoint, 200, started)
            return Response(_payload(result, False), media_type="application/json")

        handler.__name__ = f"{kind}_items"
        return handler

    for kind in ("similar", "complements"):
        app.add_api_route(f"/v1/items/{{item_id}}/{kind}", item_endpoint(kind), methods=["GET"], response_model=RecommendOut,
                          responses={404: {}, 422: {}})

    @app.get("/healthz")
    async def healthz() -> Dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready", "bundles": sorted({r.bundle_version for r in service.recommenders}),
                             "experiment": service.experiment.name})

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
