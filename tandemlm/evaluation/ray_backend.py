"""Run evaluation items on Ray workers: one actor per worker, flows compiled once per actor.

``run_eval(..., backend="ray")`` (or ``tandem eval ... --backend ray [--address ADDR]``)
sends each item that is not cached yet to a pool of :class:`EvalWorker` actors. Each actor
compiles every evaluated flow once and keeps its models loaded for all the items it runs;
the driver keeps the cache and shows the progress, and the runner scores the answers,
exactly as a local run, so a Ray run and a local run of the same flows give the same records (and reuse each
other's cached results).

Differences from a local run:

* model-call replay is off on the workers (they may be on other machines than the cache);
  deterministic models give the same answers anyway;
* models passed as objects (``EvalFlow.models``) are pickled to the workers: give them in
  the flow spec (``provider: keyed`` ...) when they cannot be pickled;
* every machine of a remote cluster needs tandemlm installed (and the embedded model
  packages or an Ollama server the specs name).

Example::

    from tandemlm.evaluation import EvalFlow, load_dataset, run_eval
    run = run_eval([EvalFlow("cascade", load_flow("cascade"))], load_dataset("kb-qa"),
                   backend="ray", address=None)  # None: start a local Ray instance
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tandemlm.errors import ConfigError, TandemError

if TYPE_CHECKING:
    from tandemlm.evaluation.cache import EvalCache
    from tandemlm.evaluation.datasets import EvalItem
    from tandemlm.evaluation.runner import _Prepared

__all__ = ["EvalWorker", "RayEvalPool"]


class EvalWorker:
    """The Ray actor: compiles the flows once and runs items one at a time.

    Args:
        flows: ``{label: (spec as a dict, model overrides or None)}``.
        threads: the worker process's thread budget for embedded models: the CPUs Ray
            reserves for it (``num_cpus=1``), so workers side by side never oversubscribe
            the machine (``TANDEM_THREADS`` does not apply in workers).
    """

    def __init__(
        self, flows: dict[str, tuple[dict[str, Any], dict[str, Any] | None]], threads: int = 1
    ) -> None:
        from tandemlm.flows.compiler import compile_flow
        from tandemlm.flows.spec import FlowSpec
        from tandemlm.models.threads import configure_threads

        configure_threads(threads)

        self._flows = {
            label: compile_flow(FlowSpec.model_validate(spec), models=models)
            for label, (spec, models) in flows.items()
        }
        self._loop = asyncio.new_event_loop()  # one loop for the actor's life: models keep state
        self._ran = 0

    def run(self, label: str, question: str) -> tuple[dict[str, Any], str]:
        """Run one item; returns the item record (unscored) and ``ok`` or ``error``."""
        from tandemlm.evaluation.runner import _error_record, _record

        flow = self._flows[label]
        self._ran += 1
        start = time.perf_counter()
        try:
            result = self._loop.run_until_complete(flow.arun(question))
        except (TandemError, ValueError, RuntimeError, OSError) as exc:
            return _error_record(exc, time.perf_counter() - start), "error"
        return _record(result, [], time.perf_counter() - start), "ok"

    def info(self) -> dict[str, Any]:
        """This worker's process id, compiled flows (with their loaded models) and items run."""
        import os

        return {
            "pid": os.getpid(),
            "flows": sorted(self._flows),
            "models": {label: sorted(f.models._models) for label, f in self._flows.items()},
            "items": self._ran,
        }


class RayEvalPool:
    """A pool of :class:`EvalWorker` actors for the flows of one evaluation.

    Args:
        prepared: the runner's prepared flows (labels, specs, overrides).
        address: Ray cluster address (``auto``, ``ray://host:10001``); ``None`` joins the
            Ray instance this process already started, else starts a local one.
        workers: number of actors (default: the cluster's CPUs); each takes one CPU.

    Raises:
        MissingExtraError: Ray is not installed (``pip install 'tandemlm[ray]'``).
        ConfigError: the models cannot be sent to the workers.
    """

    def __init__(
        self, prepared: Sequence[_Prepared], address: str | None = None, workers: int | None = None
    ) -> None:
        from tandemlm._extras import needs_extra

        with needs_extra("ray", "the Ray backend"):
            import ray
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
            self._started = True
        flows = {
            p.flow.label: (p.flow.spec.to_dict(), dict(p.flow.models) if p.flow.models else None)
            for p in prepared
        }
        try:
            flows_ref = ray.put(flows)
        except Exception as exc:
            raise ConfigError(
                f"the Ray backend cannot send the flows' model objects to workers ({exc}): "
                "declare the models in the flow spec instead"
            ) from exc
        count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(EvalWorker)
        self._actors: list[Any] = [actor.remote(flows_ref) for _ in range(count)]

    async def run(
        self,
        prep: _Prepared,
        items: Sequence[EvalItem],
        scorer: Any,
        cache: EvalCache,
        on_done: Callable[[str, bool], None],
    ) -> dict[str, dict[str, Any]]:
        """Unscored records of every item for one flow (cached ones reused, the rest run on
        workers); ``scorer`` is unused (the runner scores every record the same way)."""
        label = prep.flow.label
        records: dict[str, dict[str, Any]] = {}
        todo: list[EvalItem] = []
        for item in items:
            found = cache.get_result(prep.key, item.key())
            if found is not None:
                records[item.id] = {**found, "cached": True}
                on_done(label, False)
            else:
                todo.append(item)
        queue = list(reversed(todo))

        async def drain(actor: Any) -> None:  # each actor takes the next item when free
            while queue:
                item = queue.pop()
                record, status = await actor.run.remote(label, item.question)
                cache.put_result(prep.key, item.key(), record, status=status)
                records[item.id] = {**record, "cached": False}
                on_done(label, True)

        await asyncio.gather(*(drain(a) for a in self._actors))
        return {item.id: records[item.id] for item in items}

    def workers(self) -> list[dict[str, Any]]:
        """:meth:`EvalWorker.info` of every actor."""
        return list(self._ray.get([a.info.remote() for a in self._actors]))

    def close(self) -> None:
        """Stop the actors (and the local Ray instance if this pool started it)."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors.clear()
        if self._started:
            self._ray.shutdown()
