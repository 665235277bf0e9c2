"""The browser pool: a contract (:mod:`.base`) and the Chromium implementation (:mod:`.chromium`)."""

from .base import BrowserPool, BrowserUnavailable, PoolSaturated, PoolStats
from .chromium import ChromiumPool

__all__ = ["BrowserPool", "BrowserUnavailable", "ChromiumPool", "PoolSaturated", "PoolStats"]
