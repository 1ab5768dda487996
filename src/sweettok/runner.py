"""``LaneRunner``: independent branches of a pipeline side by side, one process per core.

After training, the default pipeline splits into branches that do not wait for each other
(reconstruction scoring, image fine-tuning and its scoring, the token LM and its samples,
rFVD / FID). Kedro's ``SequentialRunner`` runs them one after another, each on a pool of
every core; the small kernels of this project's models gain far less than 2x from a second
thread, so two branches side by side on one thread each finish sooner than the same two one
after the other on two threads each. On 2 cores the default pipeline after training took
894 s with ``SequentialRunner`` and 700 s with this runner, one after the other on the same
data (1.28x; ``scripts/bench_lanes.py``, figures in the README).

What this runner adds to Kedro's ``ParallelRunner`` (whose worker processes, shared-memory
catalog and per-process hooks it keeps):

- **Longest chain first.** A worker that frees up takes the ready node with the longest
  chain of nodes still to run after it (ties: the node with more nodes downstream, then by
  name), and a node is handed to a worker only when one is free, so that the chain that
  decides the run's length (token ids -> LM -> samples -> their scores) starts at once
  instead of queueing behind shorter branches.
- **Threads per node.** Before a node runs, :class:`sweettok.hooks.NodeThreadsHook` gives it
  ``cores // nodes running`` intra-op threads (at least 1). A node tagged ``training`` starts
  with every core instead: its training loop's thread governor
  (:mod:`sweettok.training.threads`) then follows what the other lane leaves free, step by
  step, so the training chain keeps both cores while nothing else runs. A training node that
  has another training node beside it in the pipeline (neither upstream nor downstream of
  it: the token LM and image fine-tuning of the default pipeline) is fixed at ``cores //
  lanes`` threads instead, so the two train side by side, one lane each. A governor would
  let its step switch between 1 and 2 threads when the other lane pauses, at moments that
  differ from run to run, and the float sums of a step depend on its thread count: image
  fine-tuning gave 16.44 dB in one fresh run and 16.62 in another. Fixed, they repeat.
- **A training chain runs alone.** A training node that is not paired (the proxy, phase 1
  and phase 2) starts only when no other node is running, and no node starts beside it.
  Its governor would otherwise take the other lane's node for outside load: in one fresh
  `make run` the image cache, built beside the proxy's first steps, moved the proxy to one
  thread for some of them, and a step's float sums depend on its thread count, so such a
  run could not repeat another. The only node this holds back in the default pipeline is
  that one (2 s).
- **Node times.** The worker processes report every node's wall time back, so
  :class:`sweettok.hooks.NodeTimingHook` prints one summary for the whole run.

Run it with ``kedro run --runner sweettok.runner.LaneRunner`` (``make run`` does). Results
do not depend on the runner beyond float rounding (a reduction split over one thread or two).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from kedro.runner import ParallelRunner
from kedro.runner.task import Task

__all__ = ["LaneRunner", "lane_state", "node_priorities", "nodes_to_start", "paired_training_nodes",
           "report_node_seconds", "take_reported_node_seconds", "usable_cores"]

log = logging.getLogger(__name__)

# The tag of training nodes: their threads and scheduling follow the rules in the module docstring.
TRAINING_TAG = "training"

# Set in each worker process by _init_worker: {"in_flight": Value proxy (nodes running),
# "seconds": dict proxy (node name -> wall seconds, written by the workers), "lanes": worker
# processes, "paired_training": names of the training nodes that get cores // lanes threads}.
_STATE: dict[str, Any] | None = None
# In the main process: the node seconds of the last LaneRunner run, until taken.
_COLLECTED: dict[str, float] = {}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def lane_state() -> dict[str, Any] | None:
    """In a LaneRunner worker process, the run's shared state; None anywhere else."""
    return _STATE


def report_node_seconds(name: str, seconds: float) -> None:
    """In a LaneRunner worker, hand a node's wall time to the main process (no-op elsewhere)."""
    if _STATE is not None:
        _STATE["seconds"][name] = float(seconds)


def take_reported_node_seconds() -> dict[str, float]:
    """In the main process, the node wall times the workers of the last LaneRunner run reported
    (once: the store is emptied)."""
    global _COLLECTED
    taken, _COLLECTED = _COLLECTED, {}
    return taken


def _init_worker(state: dict[str, Any]) -> None:
    global _STATE
    _STATE = state


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the worker processes: a node still running in another
    lane is cut short, as Ctrl-C would cut it."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def node_priorities(pipeline: Pipeline) -> dict[Node, tuple[int, int, str]]:
    """Per node a sort key, smallest first: (minus the nodes on the longest chain after it, minus
    the nodes downstream of it, its name: ties go alphabetically, so the order is deterministic)."""
    children = _children(pipeline)
    depth: dict[Node, int] = {}
    for node in reversed(pipeline.nodes):  # topological order reversed: children first
        depth[node] = 1 + max((depth[k] for k in children[node]), default=0)
    below = _downstream(pipeline, children)
    return {n: (1 - depth[n], -len(below[n]), n.name) for n in pipeline.nodes}


def _children(pipeline: Pipeline) -> dict[Node, set[Node]]:
    children: dict[Node, set[Node]] = {n: set() for n in pipeline.nodes}
    for node, parents in pipeline.node_dependencies.items():
        for parent in parents:
            children[parent].add(node)
    return children


def _downstream(pipeline: Pipeline, children: dict[Node, set[Node]] | None = None) -> dict[Node, set[Node]]:
    """Per node, every node downstream of it."""
    children = children if children is not None else _children(pipeline)
    below: dict[Node, set[Node]] = {}
    for node in reversed(pipeline.nodes):  # topological order reversed: children first
        below[node] = set().union(*(below[k] | {k} for k in children[node]))
    return below


def nodes_to_start(ready: list[Node], running: Collection[Node], free: int, alone: Collection[str]) -> list[Node]:
    """The ready nodes (in priority order) to hand to the ``free`` workers now. A node named in
    ``alone`` starts only when nothing runs, and nothing starts beside it; when it is the next
    ready node, the nodes after it wait too, so that the lanes drain and it is not held back."""
    if any(n.name in alone for n in running):
        return []
    start: list[Node] = []
    for node in ready[: max(free, 0)]:
        if node.name in alone:
            return [node] if not running and not start else start
        start.append(node)
    return start


def paired_training_nodes(pipeline: Pipeline, tag: str = TRAINING_TAG) -> set[str]:
    """Names of the nodes tagged ``tag`` that have another node so tagged neither upstream nor
    downstream of them (the two can run at the same time, one per lane)."""
    below = _downstream(pipeline)
    tagged = [n for n in pipeline.nodes if tag in n.tags]
    return {a.name for a in tagged
            if any(b is not a and b not in below[a] and a not in below[b] for b in tagged)}


class LaneRunner(ParallelRunner):
    """Kedro ``ParallelRunner`` with longest-chain-first scheduling and one node per free worker.

    Args:
        max_workers: worker processes (lanes); default: the usable cores.
        is_async: load and save a node's datasets in threads (Kedro's ``--async``).
    """

    def __init__(self, max_workers: int | None = None, is_async: bool = False) -> None:
        super().__init__(max_workers=max_workers if max_workers is not None else usable_cores(), is_async=is_async)

    def _run(self, pipeline: Pipeline, catalog, hook_manager=None, run_id: str | None = None) -> None:  # type: ignore[override]
        global _COLLECTED
        self._validate_catalog(catalog)
        self._validate_nodes(pipeline.nodes)
        self._set_manager_datasets(catalog)
        state = {"in_flight": self._manager.Value("i", 0), "seconds": self._manager.dict(),
                 "lanes": self._get_required_workers_count(pipeline),
                 "paired_training": frozenset(paired_training_nodes(pipeline))}
        try:
            self._schedule(pipeline, catalog, run_id, state)
        finally:
            _COLLECTED = dict(state["seconds"].items())

    def _schedule(self, pipeline: Pipeline, catalog, run_id: str | None, state: dict[str, Any]) -> None:
        nodes = pipeline.nodes
        priority = node_priorities(pipeline)
        dependencies = pipeline.node_dependencies
        load_counts = Counter(name for node in nodes for name in node.inputs)
        workers = state["lanes"]
        # the training chain: training nodes with no training node beside them run alone
        alone = {n.name for n in nodes if TRAINING_TAG in n.tags and n.name not in state["paired_training"]}
        log.info("LaneRunner: %d lanes for %d nodes", workers, len(nodes))
        todo, done_nodes = set(nodes), set()
        running: dict[Future, Node] = {}
        context = os.environ.get("KEDRO_MP_CONTEXT")
        ctx = get_context(context if context in {"fork", "spawn", "forkserver"} else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(state,)) as pool:
            while todo or running:
                ready = sorted((n for n in todo if dependencies[n] <= done_nodes), key=priority.__getitem__)
                start = nodes_to_start(ready, running.values(), workers - len(running), alone)
                if start:  # set before any of them starts: NodeThreadsHook reads it as the node starts
                    state["in_flight"].value = len(running) + len(start)
                for node in start:
                    todo.discard(node)
                    # no hook manager: it does not pickle; each worker builds its own from settings.HOOKS
                    task = Task(node=node, catalog=catalog, is_async=self._is_async, run_id=run_id, parallel=True)
                    running[pool.submit(task)] = node
                if not running:
                    raise RuntimeError(f"LaneRunner: nodes that can never run: {sorted(n.name for n in todo)}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    node = running.pop(future)
                    try:
                        future.result()
                    except Exception:
                        if running:
                            log.warning("LaneRunner: node %s failed; stopping %s", node.name,
                                        ", ".join(sorted(n.name for n in running.values())))
                        _stop(pool)  # do not wait minutes for the other lane's node
                        self._suggest_resume_scenario(pipeline, done_nodes, catalog)
                        raise
                    done_nodes.add(node)
                    state["in_flight"].value = len(running)
                    self._logger.info("Completed node: %s", node.name)
                    self._logger.info("Completed %d out of %d tasks", len(done_nodes), len(nodes))
                    self._release_datasets(node, catalog, load_counts, pipeline)
