"""The stage interface, and ``Pipeline``: the enabled stages in their one declared order.

A stage sees each request on its way in (``on_request``: read or change the context, or raise a
``ModelMuxError`` to answer the client itself) and each outcome on its way out (``on_answer``:
observe only; the answer has been sent). The first stage may also offer ``enter``, its work
done without a coroutine when nothing needs awaiting (a cached key), so that request skips
two coroutines. A stage that overrides neither hook, or is not built because its feature is
off, costs nothing per request. Plugin stages are guarded: anything but a ``ModelMuxError``
they raise becomes a 500 that names the plugin, and the server keeps going. The last stage,
``finish.FinishStage``, has no hook here: every exchange's record calls it when it ends.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable

from modelmux.errors import Headers, ModelMuxError, PluginFailed
from modelmux.pipeline.context import RequestContext

__all__ = ["ORDER", "Pipeline", "PluginFailed", "Stage"]

log = logging.getLogger("modelmux.pipeline")

ORDER = ("authenticate", "admit", "middleware", "cache_lookup", "route", "call", "account",
         "cache_store")
"""Every stage kind, in the order a request meets them. ``call`` is the front door's own
terminal step (it answers); the others are ``Stage`` objects placed by their ``kind``."""


class Stage:
    """One step of the pipeline. Subclasses set ``kind`` (one of ``ORDER``) and ``name``."""

    kind: str = "middleware"
    name: str = ""
    plugin: bool = False  # loaded from an entry point: its failures are contained and named

    async def on_request(self, ctx: RequestContext) -> None:
        """Before the call: read or change ``ctx``.

        Raises:
            ModelMuxError: to answer the client now, with that error, instead of calling.
        """

    def enter(self, ctx: RequestContext) -> bool:
        """``on_request`` done synchronously, when it can be: True when done (``on_request``
        is then not run for this request), False, having changed nothing in ``ctx``, to have
        ``on_request`` run instead. Used only for the first stage of a pipeline.

        Raises:
            ModelMuxError: as ``on_request``.
        """
        return False

    def answer_headers(self, ctx: RequestContext) -> Headers:
        """Just before a whole (non-streamed) answer is sent, ``ctx.answer`` set: headers to add
        to it (spend's cost stage: the cost)."""
        return []

    def on_answer(self, ctx: RequestContext) -> None:
        """After the answer (or the error) went to the client: ``ctx.status``, ``ctx.answer``
        and ``ctx.error`` are set. Observe only."""


def _overrides(stage: Stage, hook: str) -> bool:
    return getattr(type(stage), hook) is not getattr(Stage, hook)


async def _nothing(ctx: RequestContext) -> None:
    """No stage left to run."""


class Pipeline:
    """The stages that are on, sorted by ``ORDER`` (stable within a kind: config order).

    Raises (at build):
        ValueError: a stage's ``kind`` is not one of ``ORDER``.
    """

    __slots__ = ("stages", "observes", "heads", "before_call", "_before", "_after", "_heads",
                 "_enter", "_rest", "_then")

    def __init__(self, stages: Iterable[Stage] = ()) -> None:
        stages = list(stages)
        for stage in stages:
            if stage.kind not in ORDER or stage.kind == "call":
                raise ValueError(f"stage {stage.name!r} has kind {stage.kind!r}; expected one of "
                                 f"{', '.join(k for k in ORDER if k != 'call')}")
        self.stages = tuple(sorted(stages, key=lambda s: ORDER.index(s.kind)))
        self._before = tuple(s for s in self.stages if _overrides(s, "on_request"))
        self._after = tuple(reversed([s for s in self.stages if _overrides(s, "on_answer")]))
        self.observes = bool(self._after)
        """True when some stage has an ``on_answer`` hook to run."""
        self._heads = tuple(s for s in self.stages if _overrides(s, "answer_headers"))
        self.heads = bool(self._heads)
        """True when some stage adds headers to whole answers."""
        self.before_call: Callable[[RequestContext], Awaitable[None]] = self._run_before
        """Run every ``on_request`` hook in order (see ``_run_before``)."""
        if len(self._before) == 1 and not self._before[0].plugin:
            self.before_call = self._before[0].on_request  # nothing to guard: one frame less
        self._rest = self._before[1:]
        self._then: Callable[[RequestContext], Awaitable[None]] = functools.partial(
            self._run_before, stages=self._rest)
        """What runs after a first stage whose ``enter`` did its work: the next stage's
        ``on_request`` itself when it is the only one left and no plugin."""
        if not self._rest:
            self._then = _nothing
        elif len(self._rest) == 1 and not self._rest[0].plugin:
            self._then = self._rest[0].on_request
        first = self._before[0] if self._before else None
        self._enter: Callable[[RequestContext], bool] | None = None
        if first is not None and not first.plugin and _overrides(first, "enter"):
            self._enter = first.enter
            self.before_call = self._enter_first

    def _enter_first(self, ctx: RequestContext) -> Awaitable[None]:
        """``before_call`` when the first stage offers ``enter``: the rest of the stages as
        one awaitable when it entered, else every stage (``_run_before``).

        Raises:
            ModelMuxError: the first stage answers the client itself (raised at the call).
        """
        if self._enter(ctx):  # type: ignore[misc]  # set whenever this is ``before_call``
            return self._then(ctx)
        return self._run_before(ctx)

    async def _run_before(self, ctx: RequestContext, stages: tuple[Stage, ...] | None = None
                          ) -> None:
        """Run every ``on_request`` hook in order (of ``stages`` when given).

        Raises:
            ModelMuxError: a stage answers the client itself (``PluginFailed`` for a plugin
                that broke).
        """
        for stage in self._before if stages is None else stages:
            try:
                await stage.on_request(ctx)
            except ModelMuxError:
                raise
            except Exception as exc:
                if not stage.plugin:
                    raise
                log.exception("plugin %s failed on request %s", stage.name, ctx.request_id)
                raise PluginFailed.naming(stage.name, exc) from None

    def answer_headers(self, ctx: RequestContext) -> Headers:
        """Every stage's headers for the whole answer in ``ctx.answer``; a failing stage is
        logged and adds none."""
        out: Headers = []
        for stage in self._heads:
            try:
                out += stage.answer_headers(ctx)
            except Exception:
                log.exception("stage %s failed heading the answer to request %s",
                              stage.name, ctx.request_id)
        return out

    def after_answer(self, ctx: RequestContext) -> None:
        """Run every ``on_answer`` hook, innermost stage first; a failing one is logged."""
        for stage in self._after:
            try:
                stage.on_answer(ctx)
            except Exception:
                log.exception("stage %s failed observing the answer to request %s",
                              stage.name, ctx.request_id)
