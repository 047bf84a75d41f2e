"""Exceptions raised by streamer.

Every error that concerns a record carries where the record came from (topic, partition,
offset), so that a log line or a dead letter says exactly which input to look at. Errors about
configuration name the setting.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "DeliveryError",
    "PayloadError",
    "RecordError",
    "StreamerError",
]


class StreamerError(Exception):
    """Base class of every error streamer raises on purpose."""


class ConfigError(StreamerError):
    """A setting is missing, malformed or inconsistent.

    Raised at start-up, before any record is read. ``setting`` is the dotted path of the
    setting (``kafka.bootstrap_servers``), or of the environment variable that set it.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = message
        super().__init__(f"{setting}: {message}")


class RecordError(StreamerError):
    """One input record could not go through a stage; it goes to the dead-letter topic.

    ``reason`` is one of a small fixed set (it becomes a metric label), ``stage`` the pipeline
    stage that refused the record. The worker fills in the record's coordinates.
    """

    def __init__(self, stage: str, reason: str, message: str) -> None:
        self.stage = stage
        self.reason = reason
        self.message = message
        super().__init__(f"{stage}/{reason}: {message}")


class DeliveryError(StreamerError):
    """Outputs of a batch could not be delivered; the batch's offsets were not committed."""


class BrokerError(StreamerError):
    """The embedded broker could not be started, or a Kafka call failed for good."""


class PayloadError(StreamerError):
    """A signed payload (checkpoint or model update) was refused: unsigned, signed with another
    key, tampered with, truncated, too large, or naming code a model does not need."""
