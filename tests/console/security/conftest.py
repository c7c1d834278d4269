"""Fixtures for the console's security tests: the shared app (tests/console/conftest.py) on a
clock that starts on a working morning, which the tests move (session expiry, sign-in waits,
one-time codes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask

from bot.config import Config, ServerConfig
from bot.service import Service
from bot.web.app import create_app
from tests.console.conftest import MovableClock

START = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


def https_config() -> Config:
    """A public server behind HTTPS (the simulator then needs a sign-in)."""
    return Config(server=ServerConfig(public_url="https://voxpop.city.example"))


@pytest.fixture
def https_app(service: Service, clock: MovableClock) -> Flask:
    return create_app(service, https_config(), clock=clock)
