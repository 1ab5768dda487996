"""The node-timing hook logs each node's wall time and, after the run, the nodes slowest first."""

from __future__ import annotations

import logging

from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from sweettok.hooks import NodeTimingHook


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name


def test_times_come_from_the_clock_and_sort_slowest_first():
    ticks = iter([0.0, 2.5, 10.0, 10.5, 20.0, 27.0])
    hook = NodeTimingHook(clock=lambda: next(ticks))
    hook.before_pipeline_run({}, None, None)
    for name in ("fast", "faster", "slow"):
        hook.before_node_run(_Node(name))
        hook.after_node_run(_Node(name))
    assert hook.seconds == {"fast": 2.5, "faster": 0.5, "slow": 7.0}
    lines = hook.summary().splitlines()
    assert lines[0] == "node times (3 nodes, 10.0 s in all):"
    assert [line.split()[-1] for line in lines[1:]] == ["slow", "fast", "faster"]
    assert "70.0%" in lines[1] and "25.0%" in lines[2]


def test_a_real_run_logs_every_node(caplog):
    from kedro.framework.hooks.manager import _create_hook_manager

    manager = _create_hook_manager()
    hook = NodeTimingHook()
    manager.register(hook)
    pipe = Pipeline([node(lambda x: x + 1, "a", "b", name="plus_one"), node(lambda x: x * 2, "b", "c", name="double")])
    catalog = DataCatalog({"a": MemoryDataset(1), "b": MemoryDataset(), "c": MemoryDataset()})
    with caplog.at_level(logging.INFO, logger="sweettok.hooks"):
        manager.hook.before_pipeline_run(run_params={}, pipeline=pipe, catalog=catalog)
        SequentialRunner().run(pipe, catalog, hook_manager=manager)
        manager.hook.after_pipeline_run(run_params={}, run_result={}, pipeline=pipe, catalog=catalog)
    assert set(hook.seconds) == {"plus_one", "double"}
    assert all(sec >= 0 for sec in hook.seconds.values())
    assert "node plus_one took" in caplog.text and "node times (2 nodes" in caplog.text
