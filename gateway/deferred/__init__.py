"""The deferred lane: latency-tolerant requests collected into provider batch jobs, answered when the batch ends."""

from __future__ import annotations

from gateway.deferred.accept import defer
from gateway.deferred.fetch import get_deferred
from gateway.deferred.lane import DeferredLane

__all__ = ["DeferredLane", "defer", "get_deferred"]
