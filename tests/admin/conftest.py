"""Fixtures for the /admin tests: the end-to-end world, re-exported."""

from tests.e2e.conftest import make_world, world  # noqa: F401
