"""Start the HTTP service from a :class:`journeyrec.config.ServeConfig` (``scripts/serve.py``)."""

from __future__ import annotations

from typing import Any

__all__ = ["build_service", "run"]


def build_service(cfg: Any) -> Any:
    """Load the bundle(s) of ``cfg`` (a ServeConfig) into a warmed-up Service."""
    import faiss
    import torch

    from journeyrec.serving.recommender import Recommender
    from journeyrec.serving.service import Service
    from journeyrec.serving.store import open_store

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
        faiss.omp_set_num_threads(int(cfg.threads))
    contexts = getattr(cfg, "contexts", None) or {}
    recommender = Recommender.load(
        cfg.bundle,
        rules=cfg.rules,
        contexts={k: v.rules for k, v in contexts.items()},
        segment_rules={k: v.segments for k, v in contexts.items()},
        segments=getattr(cfg, "segments", None),
    )
    store = open_store(cfg.store) if getattr(cfg, "store", None) is not None else None
    service = Service(
        recommender,
        getattr(cfg, "ab", None),
        getattr(cfg, "limits", None),
        cfg.hmac_key_file,
        cfg.allow_demo_key,
        store=store,
        contexts=contexts,
        actions=getattr(cfg, "actions", None),
        impressions=bool(getattr(cfg.store, "impressions", True)) if store is not None else False,
    )
    service.warm_up()
    return service


def run(cfg: Any) -> None:
    """Build the service and serve it with uvicorn until interrupted (no access log: client
    addresses are personal data; the service writes its own JSON lines)."""
    import uvicorn

    from journeyrec.serving.app import create_app
    from journeyrec.serving.collector import GCPauses, freeze_startup
    from journeyrec.serving.observability import configure_logging

    log = configure_logging(cfg.log_level)
    service = build_service(cfg)
    app = create_app(service)
    # everything loaded so far lives as long as the process: out of the collector's walks
    frozen = freeze_startup()
    service.metrics.collector = GCPauses().install()
    log.info(
        "ready",
        extra={
            "fields": {
                "event": "ready",
                "bundles": sorted({r.bundle_version for r in service.recommenders}),
                "experiment": service.experiment.name,
                "host": cfg.host,
                "port": cfg.port,
                "store": None if cfg.store is None else cfg.store.backend,
                "gc_frozen_objects": frozen,
            }
        },
    )
    try:
        uvicorn.run(
            app,
            host=cfg.host,
            port=int(cfg.port),
            access_log=False,
            log_level=cfg.log_level,
            server_header=False,
        )
    finally:
        if service.store is not None:
            service.store.close()
