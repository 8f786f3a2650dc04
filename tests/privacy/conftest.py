"""Fixtures for the privacy tests: the end-to-end world, re-exported."""

from tests.e2e.conftest import make_world, world  # noqa: F401
