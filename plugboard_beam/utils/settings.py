"""plugboard 0.9.0's ``Settings`` (read from ``PLUGBOARD_*`` environment variables, as there).

Kept so code written against ``plugboard.utils`` imports and runs. plugboard_beam's engines take
nothing from it: the transport settings (ZMQ, RabbitMQ, Redis) belong to the transports Beam
replaces, logging is configured by the command line, and reads wait on the step engine.
"""

from __future__ import annotations

from enum import StrEnum
import typing as _t

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LogLevel(StrEnum):
    """Log levels."""

    info = "INFO"
    debug = "DEBUG"
    warning = "WARNING"
    error = "ERROR"
    critical = "CRITICAL"


class _FeatureFlags(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLUGBOARD_FLAGS_")

    zmq_pubsub_proxy: bool = False
    multiprocessing_fork: bool = False


class _RabbitMQSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RABBITMQ_")

    url: _t.Optional[str] = None


class _RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REDIS_")

    url: _t.Optional[str] = None


class Settings(BaseSettings):
    """plugboard's settings: ``flags``, ``log_level``, ``log_structured``, ``io_read_timeout``,
    ``rabbitmq``, ``redis``."""

    model_config = SettingsConfigDict(env_prefix="PLUGBOARD_")

    flags: _FeatureFlags = Field(default_factory=_FeatureFlags)
    log_level: LogLevel = LogLevel.warning
    log_structured: bool = False
    io_read_timeout: float = 20.0
    rabbitmq: _RabbitMQSettings = Field(default_factory=_RabbitMQSettings)
    redis: _RedisSettings = Field(default_factory=_RedisSettings)
