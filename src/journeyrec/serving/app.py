"""FastAPI app: a thin HTTP shell over :class:`journeyrec.serving.service.Service`.

Endpoints: ``POST /v1/recommendations`` (stateless: the caller sends the events),
``GET /v1/items/{id}/similar``, ``GET /v1/items/{id}/complements``; with a journey store
``POST /v1/events`` (intake), ``POST /v1/identify``, ``PUT /v1/customers/{id}/consent``,
``DELETE /v1/customers/{id}``, ``POST /v1/customers/{id}/recommendations`` and
``PUT /v1/catalog/items``; the feedback loop ``POST /v1/feedback``, ``GET /v1/ab/report``,
``GET /v1/stats``; ``GET /healthz`` (process up), ``GET /readyz`` (bundles loaded and
warmed up), ``GET /metrics`` (Prometheus text), ``/docs`` (Swagger UI, served from the
``fastapi-offline`` package's files: no CDN), ``/redoc`` and ``/openapi.json``.

Validation is Pydantic's, with the limits of ``LimitsConfig`` (events per request, k, filter
values, body bytes): bad requests get 413 or 422 with a message naming the field and the limit,
unknown item ids are ignored and reported in ``warnings``. Every recommendation answer carries its
``request_id`` in the body and the ``X-Request-ID`` header: what ``POST /v1/feedback`` names.
The request and response shapes and their limits are in :mod:`journeyrec.serving.api_models`,
the body-size limit in :mod:`journeyrec.serving.body_limit`.
Handlers are ``async`` and run the
recommendation in the event loop: it takes about a millisecond of CPU, less than a hand-off to
a thread pool would cost.
"""

# no `from __future__ import annotations`: FastAPI reads the body models from the annotations (see _body_as)
import inspect
import json
import logging
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Callable, Dict, List, Optional, TypeVar

import fastapi_offline
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from journeyrec.data.records import validate_catalog_record
from journeyrec.serving.api_models import (
    CatalogIn,
    ConsentIn,
    ContextType,
    CustomerRecommendIn,
    EventsIn,
    FeedbackIn,
    IdentifyIn,
    RecommendIn,
    RecommendOut,
    limited_schemas,
)
from journeyrec.serving.body_limit import BodySizeLimit
from journeyrec.serving.observability import LOGGER_NAME
from journeyrec.serving.request import Context, Event, RecommendRequest, RecommendResult
from journeyrec.serving.service import Service
from journeyrec.serving.settings import RISK_CONTEXTS

# Swagger UI and ReDoc assets shipped inside the pinned fastapi-offline package
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

__all__ = ["create_app"]

log = logging.getLogger(LOGGER_NAME)

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def _body_as(model: type[BaseModel]) -> Callable[[_Endpoint], _Endpoint]:
    """Have FastAPI read an endpoint's ``body`` as ``model``, a subclass of the class the parameter
    is annotated with (the annotation types the handler; the subclass adds this server's limits).
    FastAPI takes the parameters from ``inspect.signature``, which returns ``__signature__`` where
    a function has one."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        signature = inspect.signature(endpoint)
        annotated = signature.parameters["body"].annotation
        if not issubclass(model, annotated):
            raise TypeError(f"{model!r} is not a subclass of {annotated!r}")
        parameters = [p.replace(annotation=model) if p.name == "body" else p for p in signature.parameters.values()]
        endpoint.__dict__["__signature__"] = signature.replace(parameters=parameters)  # not in a function's type
        return endpoint

    return mark


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
            raise ValueError(
                f"filter '{name}' has {len(value)} values; at most {max_values} (limits.max_filter_values)"
            )
        out[name] = value
    return out


def _payload(result: RecommendResult, with_intent: bool, with_risk: bool = False) -> bytes:
    items = []
    for r in result.items:
        item: dict[str, Any] = {"item_id": r.item_id, "score": round(r.score, 6)}
        if r.model_score is not None:
            item["model_score"] = round(r.model_score, 6)
        item["reason"] = r.reason
        item["new"] = r.new
        if r.info is not None:
            item.update(r.info)
        items.append(item)
    body: dict[str, Any] = {
        "request_id": result.request_id,
        "items": items,
        "variant": result.variant,
        "segment": result.segment,
        "bundle_version": result.bundle_version,
        "warnings": result.warnings,
    }
    if with_intent:
        body["intent"] = result.intent
    if with_risk:  # cart and checkout answers: the abandonment risk and the actions it triggers
        body["abandonment_risk"] = None if result.abandonment_risk is None else round(result.abandonment_risk, 6)
        body["actions"] = list(result.actions)
    return json.dumps(body).encode()


def _answer(result: RecommendResult, with_intent: bool, with_risk: bool = False) -> Response:
    return Response(
        _payload(result, with_intent, with_risk),
        media_type="application/json",
        headers={"X-Request-ID": result.request_id or ""},
    )


def _events(events: List[Any]) -> list[Event]:
    return [
        Event(None if e.item_id is None else str(e.item_id), e.event_type, e.channel, _ms(e.timestamp)) for e in events
    ]


def create_app(service: Service) -> FastAPI:
    limits = service.limits
    schemas = limited_schemas(limits)
    app = FastAPI(
        title="journeyrec",
        description="Session-based recommendations with filters, repeat-purchase rules, boosts, diversity, "
        "exploration and reasons; a non-personal path for requests without consent; with a journey store, the "
        "live knowledge base: events from every touchpoint, identity, consent and catalogue.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="journeyrec - Swagger UI",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="journeyrec - ReDoc",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False,
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
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        route = request.scope.get("route")  # the path template: a customer id in the URL is personal data
        endpoint = (
            getattr(route, "path", request.url.path).replace("{item_id}", "{id}").replace("{customer_id}", "{id}")
        )
        metrics.observe(endpoint, 422, 0.0)
        return JSONResponse({"detail": errors}, status_code=422)

    @app.post("/v1/recommendations", response_model=RecommendOut, responses={413: {}, 422: {}})
    @_body_as(schemas.recommend)
    async def recommendations(body: RecommendIn) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        try:
            request = RecommendRequest(
                events=_events(body.events) if body.consent else [],
                k=body.k,
                filters=_filters(body.filters, limits.max_filter_values),
                consent=body.consent,
                user_id=body.user_id if body.consent else None,
                context=Context(
                    body.context.type,
                    None if body.context.item_id is None else str(body.context.item_id),
                    body.context.category,
                ),
                now_ms=_ms(body.now),
                item_fields=body.item_fields,
            )
            del body  # nothing of the raw request outlives this line but the fields above
            result, fields = service.recommend(request, request_id)
        except ValueError as exc:
            finish("/v1/recommendations", 422, started, {"request_id": request_id, "error": type(exc).__name__})
            return JSONResponse({"detail": str(exc)}, status_code=422)
        finish("/v1/recommendations", 200, started, fields)
        return _answer(result, service.default.encoder.has_intent, request.context.type in RISK_CONTEXTS)

    def item_endpoint(kind: str):
        async def handler(
            item_id: str,
            k: int = Query(10, ge=1, le=limits.max_k),
            filters: Optional[str] = Query(None, description="JSON object, same grammar as the POST body"),
            item_fields: bool = Query(True, description="add title, category, price and in_stock"),
        ) -> Response:
            started = time.perf_counter()
            endpoint = f"/v1/items/{{id}}/{kind}"
            request_id = uuid.uuid4().hex
            try:
                parsed = json.loads(filters) if filters else None
                if parsed is not None and not isinstance(parsed, dict):
                    raise ValueError("filters must be a JSON object")
                result = getattr(service, kind)(item_id, k, parsed, request_id)
                if item_fields:
                    service.arm_for_items().recommender.add_item_info(result)
            except KeyError as exc:
                finish(endpoint, 404, started)
                return JSONResponse({"detail": str(exc.args[0])}, status_code=404)
            except ValueError as exc:  # includes FilterError and JSON errors
                finish(endpoint, 422, started)
                return JSONResponse({"detail": f"invalid filters: {exc}"}, status_code=422)
            finish(endpoint, 200, started, {"request_id": request_id})
            return _answer(result, False)

        handler.__name__ = f"{kind}_items"
        return handler

    for kind in ("similar", "complements"):
        app.add_api_route(
            # :path: an id may hold "/" (sent as %2F, which the server decodes before routing)
            f"/v1/items/{{item_id:path}}/{kind}",
            item_endpoint(kind),
            methods=["GET"],
            response_model=RecommendOut,
            responses={404: {}, 422: {}},
        )

    def no_store() -> JSONResponse:
        return JSONResponse(
            {"detail": "this service runs without a journey store (start it with store=sqlite or store=redis)"},
            status_code=404,
        )

    if service.store is not None:

        @app.post("/v1/events", responses={413: {}, 422: {}})
        @_body_as(schemas.events)
        def events(body: EventsIn) -> JSONResponse:
            # a plain def: FastAPI runs it in a worker thread, so a durable commit never holds the event loop
            started = time.perf_counter()
            answer = service.intake(body.events)
            finish(
                "/v1/events",
                200,
                started,
                {
                    "received": answer["received"],
                    "stored": answer["stored"],
                    "rejected": len(answer["rejected"]),
                    "opted_out": len(answer["not_stored"]["opted_out"]),
                },
            )
            return JSONResponse(answer)

        @app.post("/v1/identify", responses={422: {}})
        def identify(body: IdentifyIn) -> JSONResponse:
            started = time.perf_counter()
            answer = service.identify(body.anonymous_id, body.customer_id)
            finish("/v1/identify", 200, started)
            return JSONResponse(answer)

        @app.put("/v1/customers/{customer_id}/consent", responses={422: {}})
        def consent(customer_id: str, body: ConsentIn) -> JSONResponse:
            started = time.perf_counter()
            answer = service.set_consent(customer_id, body.personalisation)
            finish("/v1/customers/{id}/consent", 200, started, {"personalisation": body.personalisation})
            return JSONResponse(answer)

        @app.delete("/v1/customers/{customer_id}")
        def forget(customer_id: str) -> JSONResponse:
            started = time.perf_counter()
            answer = service.forget(customer_id)
            finish("/v1/customers/{id}", 200, started)
            return JSONResponse(answer)

        @app.post(
            "/v1/customers/{customer_id}/recommendations", response_model=RecommendOut, responses={413: {}, 422: {}}
        )
        @_body_as(schemas.customer_recommend)
        async def customer_recommendations(customer_id: str, body: CustomerRecommendIn) -> Response:
            started = time.perf_counter()
            endpoint = "/v1/customers/{id}/recommendations"
            request_id = uuid.uuid4().hex
            try:
                request = RecommendRequest(
                    events=_events(body.events),
                    k=body.k,
                    filters=_filters(body.filters, limits.max_filter_values),
                    context=Context(body.context, None if body.item_id is None else str(body.item_id), body.category),
                    now_ms=_ms(body.now),
                    item_fields=body.item_fields,
                )
                result, fields = service.recommend_customer(customer_id, request, body.use_search_filters, request_id)
            except ValueError as exc:
                finish(endpoint, 422, started, {"request_id": request_id, "error": type(exc).__name__})
                return JSONResponse({"detail": str(exc)}, status_code=422)
            finish(endpoint, 200, started, fields)
            return _answer(result, service.default.encoder.has_intent, request.context.type in RISK_CONTEXTS)

        @app.put("/v1/catalog/items", responses={422: {}})
        @_body_as(schemas.catalog)
        async def catalog_items(body: CatalogIn) -> JSONResponse:
            # async on purpose: laying the changes over the bundles must not run beside a recommendation
            # (those run in the event loop); catalogue updates are rare enough to hold it for a moment
            started = time.perf_counter()
            problems = [
                {"index": i, "detail": why}
                for i, item in enumerate(body.items)
                if (why := validate_catalog_record(item)) is not None
            ]
            ids = [str(item.get("item_id")) for item in body.items]
            if not problems and len(set(ids)) != len(ids):
                problems = [
                    {"index": i, "detail": f"item_id {x!r} appears more than once"}
                    for i, x in enumerate(ids)
                    if ids.count(x) > 1
                ]
            if not problems:
                problems = [
                    {"index": i, "detail": "a new item needs a category (its vector and rules depend on it)"}
                    for i, item in enumerate(body.items)
                    if service.default.internal_id(ids[i]) is None and not item.get("category")
                ]
            if problems:  # nothing is applied when any item is invalid
                finish("/v1/catalog/items", 422, started)
                return JSONResponse({"detail": problems}, status_code=422)
            answer = service.put_items(
                {x: {k: v for k, v in item.items() if k != "item_id"} for x, item in zip(ids, body.items)}
            )
            finish("/v1/catalog/items", 200, started, {"items": len(ids), "version": answer["version"]})
            return JSONResponse(answer)

        @app.post("/v1/feedback", responses={404: {}, 410: {}, 422: {}})
        def feedback(body: FeedbackIn) -> JSONResponse:
            """A reaction to a list: attributed to its impression and position once; a duplicate is
            answered 200 and ignored; an unknown request id 404, an expired list 410, an item the
            list did not show 422."""
            started = time.perf_counter()
            try:
                when = _ms(body.timestamp)
            except ValueError as exc:
                finish("/v1/feedback", 422, started)
                return JSONResponse({"detail": str(exc)}, status_code=422)
            status, answer = service.feedback(body.request_id, str(body.item_id), body.type, when)
            finish("/v1/feedback", status, started, {"outcome": answer["outcome"], "type": body.type})
            return JSONResponse(answer, status_code=status)

        @app.get("/v1/ab/report", responses={404: {}, 422: {}})
        def ab_report(
            experiment: Optional[str] = Query(None, max_length=200, description="default: the one served"),
            control: Optional[str] = Query(None, max_length=200, description="default: 'control' or the first"),
            alpha: float = Query(0.05, gt=0.0, lt=1.0),
        ) -> JSONResponse:
            """CTR, add-to-cart and conversion per variant from the stored impressions and reactions,
            with Wilson intervals and each variant's lift over the control with its interval."""
            started = time.perf_counter()
            try:
                answer = service.ab_report(experiment, control, alpha)
            except LookupError as exc:
                finish("/v1/ab/report", 404, started)
                return JSONResponse({"detail": str(exc.args[0])}, status_code=404)
            except ValueError as exc:
                finish("/v1/ab/report", 422, started)
                return JSONResponse({"detail": str(exc)}, status_code=422)
            finish("/v1/ab/report", 200, started)
            return JSONResponse(answer)

        @app.get("/v1/stats")
        def online_stats(
            context: Annotated[ContextType, Query()] = "home", n: int = Query(10, ge=1, le=limits.max_k)
        ) -> JSONResponse:
            """The online statistics every replica shares: trending, popular in the context, CTR per slot."""
            started = time.perf_counter()
            answer = service.online_stats(context, n)
            finish("/v1/stats", 200, started)
            return JSONResponse(answer)
    else:
        for path, method in (
            ("/v1/events", "POST"),
            ("/v1/identify", "POST"),
            ("/v1/catalog/items", "PUT"),
            ("/v1/customers/{customer_id}/consent", "PUT"),
            ("/v1/customers/{customer_id}", "DELETE"),
            ("/v1/customers/{customer_id}/recommendations", "POST"),
            ("/v1/feedback", "POST"),
            ("/v1/ab/report", "GET"),
            ("/v1/stats", "GET"),
        ):
            app.add_api_route(path, no_store, methods=[method], include_in_schema=False)

    @app.get("/healthz")
    async def healthz() -> Dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "bundles": sorted({r.bundle_version for r in service.recommenders}),
                "experiment": service.experiment.name,
            }
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
