"""The e2e world (a stand-in ACM + the gateway on loopback) is the operations tests' world too."""

from tests.e2e.conftest import make_world, world

__all__ = ["make_world", "world"]
