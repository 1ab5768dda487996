"""Kedro hooks: every table in the catalog is validated by its pandera schema, every
node's wall time is logged, and under :class:`sweettok.runner.LaneRunner` every node gets its
share of the cores.

Tables are checked when a node is about to save them and again when a node loads
them, so a hand-edited or stale file is caught before it reaches a model. At the end of a
run (or at the node that failed) the nodes' wall times are logged, slowest first, with
their share of the run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl

from sweettok import runner
from sweettok.schemas import SCHEMAS

log = logging.getLogger(__name__)


class PanderaValidationHook:
    """Validate catalog tables named in `sweettok.schemas.SCHEMAS` on save and load."""

    @staticmethod
    def _validate(dataset_name: str, data: Any, when: str) -> None:
        schema = SCHEMAS.get(dataset_name)
        if schema is None or not isinstance(data, pd.DataFrame):
            return
        schema.validate(data, lazy=True)
        log.debug("%s: %d rows valid against %s (%s)", dataset_name, len(data), schema.name, when)

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        self._validate(dataset_name, data, "save")

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        self._validate(dataset_name, data, "load")


class NodeTimingHook:
    """Log each node's wall time, up to its last output saved, and after the run every node's time,
    slowest first. (A node may return a generator that its dataset consumes while saving, so the
    time runs until the node's outputs are all saved, not only until its function returns.)"""

    def __init__(self, clock=time.perf_counter) -> None:
        self._clock = clock
        self._started: dict[str, float] = {}
        self._unsaved: dict[str, set[str]] = {}
        self.seconds: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        self._started.clear()
        self._unsaved.clear()
        self.seconds.clear()
        runner.take_reported_node_seconds()  # a LaneRunner run's leftovers in this process

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = self._clock()
        self._unsaved[node.name] = set(node.outputs)

    def _done(self, name: str) -> None:
        log.info("node %s took %.1f s", name, self.seconds[name])
        runner.report_node_seconds(name, self.seconds[name])  # LaneRunner: to the main process
        self._started.pop(name, None)
        self._unsaved.pop(name, None)

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        if node.name in self._started:
            self.seconds[node.name] = self._clock() - self._started[node.name]
            if not self._unsaved.get(node.name):
                self._done(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        name = getattr(node, "name", None)
        if name in self._started:
            self.seconds[name] = self._clock() - self._started[name]
            self._unsaved[name].discard(dataset_name)
            if not self._unsaved[name]:
                self._done(name)

    def summary(self) -> str:
        """The timed nodes, slowest first: seconds and share of their sum."""
        total = sum(self.seconds.values())
        lines = [f"node times ({len(self.seconds)} nodes, {total:.1f} s in all):"]
        for name, sec in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {sec:8.1f} s  {100 * sec / max(total, 1e-9):5.1f}%  {name}")
        return "\n".join(lines)

    def _log_summary(self) -> None:
        self.seconds.update(runner.take_reported_node_seconds())  # nodes run by LaneRunner's workers
        if self.seconds:
            log.info(self.summary())

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._log_summary()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._log_summary()


class NodeThreadsHook:
    """Under :class:`sweettok.runner.LaneRunner`: before each node, ``cores // nodes running``
    intra-op threads (at least 1); a node tagged ``training`` starts with every core and its
    loop's thread governor follows the other lane, except one with another training node beside
    it in the pipeline, which gets ``cores // lanes`` (at least 1; with one thread its loop runs
    no governor, so its sums, and its weights, are the same in every run). Outside a LaneRunner
    it changes nothing."""

    TRAINING_TAG = runner.TRAINING_TAG

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        state = runner.lane_state()
        if state is None:
            return
        import torch

        cores = runner.usable_cores()
        if self.TRAINING_TAG not in node.tags:
            threads = max(1, cores // max(1, int(state["in_flight"].value)))
        elif node.name in state.get("paired_training", ()):
            threads = max(1, cores // state["lanes"])
        else:
            threads = cores
        torch.set_num_threads(threads)
        log.debug("node %s: %d intra-op threads", node.name, threads)
