"""The HTTP API's request and response shapes: one place that defines what goes over the wire and
its limits, apart from the routes that serve it (:mod:`journeyrec.serving.app`).

Requests are strict (``extra="forbid"``, strict types, bounded times and lengths), so a bad request
is a 422 naming the field. The limits of this server (``LimitsConfig``: events per request, k,
batch and catalogue sizes) are not in the classes but in subclasses built per app by
:func:`limited_schemas`, so that the OpenAPI document shows the limits the server enforces.
"""

# no `from __future__ import annotations`, as in app.py, which held these classes: Pydantic builds
# them from evaluated annotations, and FastAPI reads them from app.py's handlers (see app._body_as)
from copy import copy
from datetime import datetime
from typing import Annotated, Any, Dict, List, Literal, NamedTuple, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, create_model
from pydantic.fields import FieldInfo

from journeyrec.data.schema import CHANNELS, EVENT_TYPES
from journeyrec.serving.request import MAX_MS, MIN_MS, RecommendRequest
from journeyrec.serving.settings import CONTEXT_TYPES
from journeyrec.serving.store import REACTION_TYPES

__all__ = [
    "CatalogIn",
    "ConsentIn",
    "ContextIn",
    "ContextType",
    "CustomerRecommendIn",
    "EventIn",
    "EventsIn",
    "FeedbackIn",
    "IdentifyIn",
    "ItemOut",
    "LimitedSchemas",
    "RangeIn",
    "RecommendIn",
    "RecommendOut",
    "limited_schemas",
]

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
ContextType = Literal[CONTEXT_TYPES]  # type: ignore[valid-type]
ReactionType = Literal[REACTION_TYPES]  # type: ignore[valid-type]
ItemId = Union[StrictStr, StrictInt]
Scalar = Union[StrictBool, StrictStr, StrictInt, StrictFloat]
EpochMs = Annotated[StrictInt, Field(ge=MIN_MS, le=MAX_MS)]  # bounded: larger integers are not times


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: Optional[ItemId] = Field(
        None, description="item id as the dataset spells it (search/newsletter events have none)"
    )
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
    category: Optional[StrictStr] = Field(default=None, max_length=500)


class RecommendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: List[EventIn] = Field(..., description="recent events, oldest first")  # max_length: limits.max_events
    k: StrictInt = Field(RecommendRequest.k, ge=1)  # le: limits.max_k
    filters: Dict[str, FilterValue] = Field(
        default_factory=dict,
        max_length=20,
        description="equality, any-of list, or {min, max} range per catalogue attribute",
    )
    consent: StrictBool = True
    user_id: Optional[StrictStr] = Field(None, max_length=256, description="pseudonymised on entry, never stored")
    context: ContextIn = Field(default_factory=lambda: ContextIn())
    now: Optional[Union[EpochMs, datetime]] = Field(None, description="request time for replays (default: now)")
    item_fields: StrictBool = Field(True, description="add title, category, price and in_stock to each item")


class ItemOut(BaseModel):
    item_id: str
    score: float = Field(..., description="the blended score the list is ordered by (never increases down the list)")
    model_score: Optional[float] = Field(None, description="the model's own score (personal answers)")
    reason: str
    new: bool = Field(False, description="added by the live catalogue after the bundle's export")
    title: Optional[str] = None
    category: Optional[str] = None
    price: Optional[float] = None
    in_stock: Optional[bool] = None


class RecommendOut(BaseModel):
    request_id: str = Field(..., description="names this list in POST /v1/feedback (also the X-Request-ID header)")
    items: List[ItemOut]
    variant: Optional[str]
    segment: Optional[str] = Field(None, description="the customer's segment (anonymous without consent)")
    bundle_version: str
    warnings: List[str]
    intent: Optional[float] = Field(None, description="P(purchase in this session); only with an intent model")
    abandonment_risk: Optional[float] = Field(
        None,
        description="cart and checkout contexts only: P(this session ends without a purchase) while its cart is "
        "open (null otherwise, or when the bundle has no abandonment model)",
    )
    actions: Optional[List[str]] = Field(
        None,
        description="cart and checkout contexts only: the configured actions the risk triggers (actions: in "
        "configs/serve.yaml), e.g. free_shipping_banner",
    )


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: StrictStr = Field(..., min_length=1, max_length=64, description="the list's request_id")
    item_id: ItemId = Field(..., description="the item reacted to: one of the list's items")
    type: ReactionType = Field(..., description="click, cart, purchase or dismiss")
    timestamp: Optional[Union[EpochMs, datetime]] = Field(None, description="when (default: now)")


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: List[Any] = Field(
        ...,  # max_length: limits.max_batch_events
        description="events in the canonical schema, each validated on its own: customer_id or "
        "anonymous_id, session_id, item_id, event_type, channel, timestamp (epoch ms or ISO 8601), "
        "query, filters, price, quantity",
    )


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anonymous_id: StrictStr = Field(..., min_length=1, max_length=256)
    customer_id: StrictStr = Field(..., min_length=1, max_length=256)


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    personalisation: StrictBool


class CustomerRecommendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: ContextType = Field("home", description="the touchpoint asking")
    item_id: Optional[ItemId] = Field(None, description="product page: the product shown")
    category: Optional[StrictStr] = Field(None, max_length=500)
    filters: Dict[str, FilterValue] = Field(
        default_factory=dict,
        max_length=20,
        description="the page's filters; they win over the last search's per attribute",
    )
    use_search_filters: StrictBool = Field(
        True, description="apply the last search's filters where the context carries them"
    )
    k: StrictInt = Field(RecommendRequest.k, ge=1)  # le: limits.max_k
    events: List[EventIn] = Field(
        default_factory=list,  # max_length: limits.max_events
        description="events of this request not (yet) sent to /v1/events, oldest first",
    )
    item_fields: StrictBool = Field(True, description="add title, category, price and in_stock to each item")
    now: Optional[Union[EpochMs, datetime]] = Field(None, description="request time for replays (default: now)")


class CatalogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: List[Dict[str, Any]] = Field(
        ...,
        min_length=1,  # max_length: limits.max_catalog_items
        description="item_id + the fields that change (stock, price, attributes), "
        "or a whole new item (needs a category)",
    )


_Model = TypeVar("_Model", bound=BaseModel)


def _limited(model: type[_Model], **constraints: FieldInfo) -> type[_Model]:
    """A subclass of ``model`` under its name whose fields named in ``constraints`` also carry
    those (``Field(max_length=...)``, ``Field(le=...)``): this server's limits, which the OpenAPI
    docs show."""
    fields: dict[str, Any] = {}
    for name, constraint in constraints.items():
        field = model.model_fields[name]
        fields[name] = (Annotated[field.annotation, constraint], copy(field))
    return create_model(model.__name__, __base__=model, __module__=model.__module__, **fields)


class LimitedSchemas(NamedTuple):
    """The request bodies with this server's limits; each a subclass of the module's class of its name."""

    recommend: type[RecommendIn]
    events: type[EventsIn]
    customer_recommend: type[CustomerRecommendIn]
    catalog: type[CatalogIn]


def limited_schemas(limits: Any) -> LimitedSchemas:
    """The request bodies bounded by ``limits`` (a ``LimitsConfig``): built per app, so two servers
    with other limits each publish and enforce their own."""
    return LimitedSchemas(
        recommend=_limited(RecommendIn, events=Field(max_length=limits.max_events), k=Field(le=limits.max_k)),
        events=_limited(EventsIn, events=Field(max_length=limits.max_batch_events)),
        customer_recommend=_limited(
            CustomerRecommendIn, k=Field(le=limits.max_k), events=Field(max_length=limits.max_events)
        ),
        catalog=_limited(CatalogIn, items=Field(max_length=limits.max_catalog_items)),
    )
