"""The catalogue snapshot as arrays for serving: filters and attribute tests become boolean masks.

Every item attribute of the canonical catalogue schema is held as one array indexed by internal
id (row 0 = padding, never eligible), so a filter is a handful of vectorised comparisons, and
masks of repeated filters are cached. Filter grammar (JSON), one entry per attribute, all ANDed:

* equality: ``{"size": "XL"}``, ``{"in_stock": true}``, ``{"own_brand": false}``
* set (any of): ``{"colour": ["blue", "navy"]}``
* range (inclusive, either bound optional), numeric attributes only: ``{"price": {"min": 10, "max": 50}}``
* ``category`` matches the path and every path below it: ``{"category": "Apparel/Outerwear"}``
* ``tags`` matches items having any of the given tags: ``{"tags": ["organic"]}``

An item whose attribute is missing never matches a filter on it (asking for size XL excludes
unsized items). Unknown attributes and wrongly typed values raise :class:`FilterError`, whose
message names the attribute and what is allowed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from journeyrec.errors import JourneyrecError

__all__ = ["FilterError", "Catalog", "STRING_ATTRIBUTES", "NUMERIC_ATTRIBUTES", "BOOL_ATTRIBUTES"]

STRING_ATTRIBUTES = ("category", "brand", "size", "colour", "repurchase_class", "title")
NUMERIC_ATTRIBUTES = ("price", "repurchase_days")
BOOL_ATTRIBUTES = ("in_stock", "own_brand")
LIST_ATTRIBUTES = ("tags",)
_CACHE_SIZE = 4096


class FilterError(JourneyrecError, ValueError):
    """A filter names an unknown attribute or has a value of the wrong type."""


class Catalog:
    """Attribute arrays of the catalogue, aligned with internal ids."""

    def __init__(self, table: pa.Table) -> None:
        self.n = table.num_rows + 1
        self.item_ids = np.asarray([None] + table.column("item_id").to_pylist(), dtype=object)
        self._codes: dict[str, np.ndarray] = {}
        self._vocab: dict[str, dict[str, int]] = {}
        self._values: dict[str, list[str]] = {}
        for name in STRING_ATTRIBUTES:
            values = table.column(name).to_pylist() if name in table.column_names else [None] * (self.n - 1)
            vocab = sorted({v for v in values if v is not None})
            lookup = {v: i + 1 for i, v in enumerate(vocab)}
            codes = np.zeros(self.n, dtype=np.int32)
            codes[1:] = [lookup.get(v, 0) if v is not None else 0 for v in values]
            self._codes[name], self._vocab[name], self._values[name] = codes, lookup, vocab
        self._numbers = {
            name: np.concatenate(
                [[np.nan], np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)]
            )
            if name in table.column_names
            else np.full(self.n, np.nan)
            for name in NUMERIC_ATTRIBUTES
        }
        self._bools = {}
        for name in BOOL_ATTRIBUTES:
            values = table.column(name).to_pylist() if name in table.column_names else [None] * (self.n - 1)
            self._bools[name] = np.asarray([-1] + [-1 if v is None else int(v) for v in values], dtype=np.int8)
        tags = table.column("tags").to_pylist() if "tags" in table.column_names else [None] * (self.n - 1)
        inverted: dict[str, list[int]] = {}
        first = np.zeros(self.n, dtype=np.int64)
        for i, tl in enumerate(tags, start=1):
            for t in tl or ():
                inverted.setdefault(str(t), []).append(i)
        tag_code = {t: j + 1 for j, t in enumerate(sorted(inverted))}
        for i, tl in enumerate(tags, start=1):
            if tl:
                first[i] = tag_code[str(tl[0])]
        self._tags = {t: np.asarray(v, dtype=np.int64) for t, v in inverted.items()}
        self._first_tag = first
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.all = np.ones(self.n, dtype=bool)
        self.all[0] = False
        self.all.flags.writeable = False

    # ------------------------------------------------------------------ attributes
    @staticmethod
    def filterable_attributes() -> list[str]:
        return sorted(STRING_ATTRIBUTES + NUMERIC_ATTRIBUTES + BOOL_ATTRIBUTES + LIST_ATTRIBUTES)

    @property
    def filterable(self) -> list[str]:
        return self.filterable_attributes()

    def has(self, attribute: str) -> bool:
        """Whether any item has a value for ``attribute`` (rules on absent attributes do nothing)."""
        if attribute in self._codes:
            return bool(self._vocab[attribute])
        if attribute in self._numbers:
            return bool(np.isfinite(self._numbers[attribute]).any())
        if attribute in self._bools:
            return bool((self._bools[attribute] >= 0).any())
        return attribute == "tags" and bool(self._tags)

    def codes(self, attribute: str) -> np.ndarray:
        """Integer code of a string attribute per item (0 = missing); ``tags``: the first tag."""
        if attribute == "tags":
            return self._first_tag
        if attribute not in self._codes:
            raise FilterError(
                f"'{attribute}' is not a categorical attribute; use one of {list(STRING_ATTRIBUTES) + ['tags']}"
            )
        return self._codes[attribute]

    def vocabulary(self, attribute: str) -> list[str]:
        """Distinct values of a string attribute; value ``v`` has code ``vocabulary.index(v) + 1``."""
        return self._values[attribute]

    def value(self, attribute: str, item: int) -> Any:
        """The attribute of one item (None when missing)."""
        if attribute in self._codes:
            c = int(self._codes[attribute][item])
            return self._values[attribute][c - 1] if c else None
        if attribute in self._numbers:
            v = float(self._numbers[attribute][item])
            return None if np.isnan(v) else v
        if attribute in self._bools:
            b = int(self._bools[attribute][item])
            return None if b < 0 else bool(b)
        raise FilterError(f"unknown attribute '{attribute}'")

    def set_values(self, attribute: str, items: np.ndarray, values: list[Any]) -> None:
        """Change a numeric or boolean attribute of some items in place (live stock and prices);
        cached filter masks are dropped. None = unknown."""
        if attribute in self._numbers:
            self._numbers[attribute][items] = [np.nan if v is None else float(v) for v in values]
        elif attribute in self._bools:
            self._bools[attribute][items] = [-1 if v is None else int(bool(v)) for v in values]
        else:
            raise FilterError(f"'{attribute}' is not a numeric or boolean attribute")
        self._cache.clear()

    def numbers(self, attribute: str) -> np.ndarray:
        return self._numbers[attribute]

    def bools(self, attribute: str) -> np.ndarray:
        return self._bools[attribute]

    # ------------------------------------------------------------------ masks
    def mask(self, filters: Mapping[str, Any] | None) -> np.ndarray:
        """Boolean mask [N + 1] of the items satisfying every filter (read-only, cached)."""
        if not filters:
            return self.all
        key = json.dumps(filters, sort_keys=True, default=str)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        m = self.all.copy()
        for attribute, value in filters.items():
            m &= self.attribute_mask(attribute, value)
        m.flags.writeable = False
        self._cache[key] = m
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return m

    def attribute_mask(self, attribute: str, value: Any) -> np.ndarray:
        """Items whose ``attribute`` matches ``value`` (equality, any-of list, or min/max range)."""
        if attribute == "category":
            return self._category_mask(value)
        if attribute in self._codes:
            values = self._as_list(attribute, value, str)
            vocab = self._vocab[attribute]
            wanted = np.zeros(len(vocab) + 1, dtype=bool)
            wanted[[vocab[v] for v in values if v in vocab]] = True
            return wanted[self._codes[attribute]]
        if attribute in self._numbers:
            x = self._numbers[attribute]
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - {"min", "max"})
                if unknown:
                    raise FilterError(f"range filter on '{attribute}' accepts keys min and max, not {unknown}")
                lo, hi = value.get("min"), value.get("max")
                for bound in (lo, hi):
                    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                        raise FilterError(f"range bound of '{attribute}' must be a number, got {bound!r}")
                m = np.isfinite(x)
                if lo is not None:
                    m &= x >= lo
                if hi is not None:
                    m &= x <= hi
                return m
            values = self._as_list(attribute, value, (int, float))
            return np.isin(x, np.asarray(values, dtype=np.float64))
        if attribute in self._bools:
            values = self._as_list(attribute, value, bool)
            b = self._bools[attribute]
            return np.isin(b, np.asarray([int(v) for v in values], dtype=np.int8))
        if attribute == "tags":
            m = np.zeros(self.n, dtype=bool)
            for t in self._as_list(attribute, value, (str, int)):
                idx = self._tags.get(str(t))
                if idx is not None:
                    m[idx] = True
            return m
        raise FilterError(f"unknown filter attribute '{attribute}'; filterable: {self.filterable}")

    def _category_mask(self, value: Any) -> np.ndarray:
        paths = self._as_list("category", value, str)
        vocab = self._values["category"]
        wanted = np.zeros(len(vocab) + 1, dtype=bool)
        for p in paths:
            p = p.strip("/")
            for i, c in enumerate(vocab, start=1):
                if c == p or c.startswith(p + "/"):
                    wanted[i] = True
        return wanted[self._codes["category"]]

    @staticmethod
    def _as_list(attribute: str, value: Any, types: type | tuple[type, ...]) -> list[Any]:
        types = types if isinstance(types, tuple) else (types,)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise FilterError(f"filter on '{attribute}' has an empty list of values")
        for v in values:
            # bool is an int in Python: accept it only where booleans are meant
            if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
                names = "/".join(t.__name__ for t in types)
                raise FilterError(f"filter on '{attribute}' expects {names} value(s), got {v!r}")
        return values
