"""Calling the provider: attempts over a route's models and their deployments, before anything reached the client.

For each model of the route (target, then fallbacks): pick a deployment (least in flight, breaker closed), call it,
and on a retryable failure retry with jittered exponential backoff (or the provider's retry-after) while attempts,
the deployment's retry budget and the request's deadline allow; then move on to the next model. A refusal of the
request itself (a 4xx) is the client's answer at once. With every model given up the client gets the last failure;
with every breaker open and nothing tried, 503 `upstream_unavailable` with `retry-after`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Generic, TypeVar

from core.backoff import delay_for
from core.errors import NetraError, ServiceUnavailable, UpstreamTimeout
from gateway.context import CallContext
from gateway.providers.base import Provider, UpstreamCall, UpstreamReply, UpstreamStream
from gateway.providers.failures import Failure, classify, retry_after_header
from gateway.routing import Deployment, Route
from gateway.routing.held import hold_stream
from gateway.state import GatewayState

T = TypeVar("T")
Op = Callable[[Provider, UpstreamCall, bytes], Awaitable[T]]
Hold = Callable[[T, Callable[[], None]], T]
log = logging.getLogger("netra.upstream")
# The longest pause Netra itself chooses between attempts (a provider's retry-after may ask for longer).
MAX_BACKOFF = 10.0


class _GiveUp(Exception):
    """This model is done with: go on to the next of the route."""


class Dispatch(Generic[T]):
    """One call's attempts over its route."""

    def __init__(
        self, state: GatewayState, ctx: CallContext, call: UpstreamCall, route: Route, op: Op[T],
        hold: Hold[T] | None = None,
    ) -> None:
        self.state, self.ctx, self.call, self.route, self.op, self.hold = state, ctx, call, route, op, hold
        self.loop = asyncio.get_running_loop()
        budget = state.settings.request_deadline - ctx.elapsed_ms() / 1000.0
        self.deadline = self.loop.time() + max(0.0, budget)
        self.error: NetraError | None = None
        self.rng = random.Random()  # noqa: S311 - jitter, not crypto

    async def run(self) -> T:
        """The first answer any model of the route gives, else the failure that ended the last one."""
        for index, name in enumerate(self.route.chain):
            if self.loop.time() >= self.deadline:
                break
            try:
                return await self._model(name, index)
            except _GiveUp:
                self.state.metrics.child(self.state.metrics.fallbacks, name).inc()
        raise self._final_error()

    async def _model(self, name: str, index: int) -> T:
        seen_failing: set[Deployment] = set()
        for attempt in range(1, self.state.settings.upstream_attempts + 1):
            deployment = self._deployment(name, attempt, seen_failing)
            call, body = self._encoded(deployment, index)
            try:
                return await self._attempt(deployment, call, body)
            except NetraError as exc:
                failure = self._failed(deployment, exc)
            seen_failing.add(deployment)
            await self._back_off(attempt, failure, index)
        raise _GiveUp

    def _deployment(self, name: str, attempt: int, seen_failing: set[Deployment]) -> Deployment:
        """The deployment for this attempt, its breaker's permission taken; _GiveUp when none may be called."""
        deployments = self.state.deployments
        chosen = deployments.pick(name, self.call.endpoint, seen_failing)
        if chosen is None:
            raise _GiveUp
        if attempt > 1 and not chosen.budget.try_retry():
            self.state.metrics.child(self.state.metrics.retry_budget_exhausted, chosen.label).inc()
            raise _GiveUp
        if not chosen.breaker.allow():
            raise _GiveUp  # another request took the half-open probe meanwhile
        if attempt == 1:
            chosen.budget.request()
        else:
            self.state.metrics.child(self.state.metrics.upstream_retries, chosen.label).inc()
        return chosen

    def _encoded(self, deployment: Deployment, index: int) -> tuple[UpstreamCall, bytes]:
        """The call as this deployment takes it; a body a fallback's provider cannot take skips that fallback."""
        call = replace(self.call, model=deployment.model)
        try:
            return call, deployment.provider.encode(call)
        except NetraError:
            deployment.breaker.release()
            if index == 0:
                raise  # the client's body does not suit the model it asked for: its answer, before any attempt
            log.info("fallback skipped: its provider cannot take this body", extra={"model": deployment.model.name})
            raise _GiveUp from None

    async def _attempt(self, deployment: Deployment, call: UpstreamCall, body: bytes) -> T:
        ctx, metrics = self.ctx, self.state.metrics
        ctx.upstream_called = True
        ctx.upstream_attempts += 1
        ctx.served_model, ctx.provider, ctx.served_name = call.model.upstream_name, call.model.provider, call.model.name
        deployment.in_flight += 1
        held, started = False, self.loop.time()
        try:
            async with asyncio.timeout_at(self.deadline):
                value = await self.op(deployment.provider, call, body)
            deployment.breaker.success()
            if self.hold is not None:
                value, held = self.hold(value, deployment.release), True
            return value
        except TimeoutError:
            raise UpstreamTimeout("The request's deadline passed before the provider answered.") from None
        except asyncio.CancelledError:
            deployment.breaker.release()
            raise
        finally:
            metrics.child(metrics.upstream_latency, call.model.provider).observe(self.loop.time() - started)
            if not held:
                deployment.release()

    def _failed(self, deployment: Deployment, error: NetraError) -> Failure:
        """Note a failed attempt; re-raise an error no other attempt or model can mend."""
        failure = classify(error)
        if failure is None or not failure.breaker:
            deployment.breaker.success()  # the deployment answered: the request itself was refused
            raise error
        deployment.breaker.failure()
        self.error = error
        if not failure.retryable:
            raise _GiveUp
        return failure

    async def _back_off(self, attempt: int, failure: Failure, index: int) -> None:
        """Wait before the next attempt at this model; _GiveUp when not worth it or past the deadline."""
        if attempt >= self.state.settings.upstream_attempts:
            raise _GiveUp
        delay = delay_for(attempt, self.state.settings.retry_base_delay, MAX_BACKOFF, jitter="equal", rng=self.rng)
        hint = failure.retry_after
        if hint is not None and hint > delay:
            if failure.kind == "overloaded" and index + 1 < len(self.route.chain):
                raise _GiveUp  # a rate-limited model: the next one can answer now rather than later
            delay = hint
        if self.loop.time() + delay >= self.deadline:
            raise _GiveUp
        await asyncio.sleep(delay)

    def _final_error(self) -> NetraError:
        """The error of the last attempt, or (nothing tried: every breaker open) 503 with when to come back."""
        wait = min((self.state.deployments.retry_in(name) for name in self.route.chain), default=0.0)
        error = self.error
        if error is None:
            error = ServiceUnavailable(
                f"No deployment of `{self.route.chain[0]}` is accepting calls now (circuit open); retry later.",
                code="upstream_unavailable",
            )
        if isinstance(error, ServiceUnavailable) and "retry-after" not in error.headers:
            error.headers.update(retry_after_header(max(wait, self.state.settings.retry_base_delay)))
        return error


async def dispatch(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, route: Route, op: Op[T], hold: Hold[T] | None = None,
) -> T:
    """Call the route's models in turn until one answers (see the module docstring)."""
    return await Dispatch(state, ctx, call, route, op, hold).run()


async def send(state: GatewayState, ctx: CallContext, call: UpstreamCall, route: Route) -> UpstreamReply:
    """A complete answer from the first model of the route that gives one, naming the deployment that gave it."""
    reply = await dispatch(state, ctx, call, route, lambda provider, c, body: provider.send(c, body))
    reply.served = served_by(ctx)
    return reply


def served_by(ctx: CallContext) -> tuple[str, str, str]:
    """The deployment that answered a call: upstream model, provider, configured model name."""
    return ctx.served_model, ctx.provider, ctx.served_name


async def open_stream(state: GatewayState, ctx: CallContext, call: UpstreamCall, route: Route) -> UpstreamStream:
    """A stream from the first model of the route that starts one; it holds its deployment busy until closed."""
    return await dispatch(
        state, ctx, call, route, lambda provider, c, body: provider.open_stream(c, body), hold_stream,
    )
