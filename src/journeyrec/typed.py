"""From composed (or stored) configuration to typed dataclass objects, once, at each entry point.

Hydra composes YAML into an OmegaConf tree typed by the dataclass schemas of each layer; entry
points convert that tree with :func:`to_typed` and hand the resulting objects down, so no code
below reads a key with a default of its own. Two checks OmegaConf leaves out are made here:

* a key added with ``+key=value`` bypasses OmegaConf's struct mode, so a misspelt key would be
  carried silently beside the real one; :func:`check_keys` refuses any key that is not a field of
  its node's schema and names the closest valid one;
* a plain mapping (a run's ``config.yaml``, a bundle's ``config.json``) is merged into the schema,
  so unknown keys and wrong types fail the same way as on the command line.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping, TypeVar, cast

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from journeyrec.errors import ConfigError

__all__ = ["check_keys", "to_typed", "as_dict"]

T = TypeVar("T")


def _unknown_key_message(key: str, full_key: str, fields: list[str], schema: type) -> str:
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(sorted(fields))}"
    return f"unknown config key '{full_key}' (not in {schema.__name__}); {hint}"


def check_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Raise ConfigError for any key of ``cfg`` (recursively) that its node's dataclass schema
    does not declare."""
    schema = OmegaConf.get_type(cfg)
    fields = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
    for key in cfg.keys():
        name = str(key)
        full = f"{prefix}{name}"
        if fields is not None and name not in fields:
            raise ConfigError(_unknown_key_message(name, full, fields, schema))  # type: ignore[arg-type]
        child = cfg._get_node(name)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            check_keys(child, f"{full}.")
        elif isinstance(child, ListConfig) and not child._is_missing() and not child._is_none():
            for i, item in enumerate(child):
                if isinstance(item, DictConfig):
                    check_keys(item, f"{full}[{i}].")


def to_typed(schema: type[T], cfg: Any) -> T:
    """``cfg`` (a composed DictConfig, a plain mapping or already a ``schema`` instance) as a
    ``schema`` instance, every nested node converted too. Unknown keys and values of the wrong
    type raise ConfigError naming the key."""
    if isinstance(cfg, schema):
        return cfg
    try:
        if isinstance(cfg, DictConfig) and OmegaConf.get_type(cfg) is schema:
            node = cfg
        else:
            # a mapping merged onto a structured DictConfig is a DictConfig
            node = cast(
                DictConfig,
                OmegaConf.merge(OmegaConf.structured(schema), cfg if isinstance(cfg, DictConfig) else dict(cfg)),
            )
        check_keys(node)
        obj = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        full_key = getattr(exc, "full_key", None)
        detail = str(exc).splitlines()[0]
        where = f"'{full_key}': " if full_key else ""
        raise ConfigError(f"invalid config {where}{detail}") from exc
    if not isinstance(obj, schema):
        raise ConfigError(f"config does not describe a {schema.__name__} (got {type(obj).__name__})")
    return obj


def as_dict(obj: Any) -> dict[str, Any]:
    """A typed config (or mapping) as plain JSON-able containers, for files and MLflow params."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, DictConfig):
        return OmegaConf.to_container(obj, resolve=True)  # type: ignore[return-value]
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"not a config: {type(obj).__name__}")
