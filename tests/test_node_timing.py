"""The node-timing hook logs each node's wall time and, after the run, the nodes slowest first."""

from __future__ import annotations

import logging
import time

from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from sweettok.hooks import NodeTimingHook


class _Node:
    def __init__(self, name: str, outputs: tuple[str, ...] = ()) -> None:
        self.name = name
        self.outputs = list(outputs)


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


def test_the_time_runs_until_the_last_output_is_saved():
    # a node that returns a generator does its work while its dataset saves it
    ticks = iter([0.0, 0.1, 3.0, 8.0])
    hook = NodeTimingHook(clock=lambda: next(ticks))
    lazy = _Node("lazy", outputs=("codes", "table"))
    hook.before_node_run(lazy)
    hook.after_node_run(lazy)
    assert hook.seconds["lazy"] == 0.1
    hook.after_dataset_saved("codes", lazy)
    assert hook.seconds["lazy"] == 3.0
    hook.after_dataset_saved("table", lazy)
    assert hook.seconds["lazy"] == 8.0


def test_a_real_run_logs_every_node(caplog):
    from kedro.framework.hooks.manager import _create_hook_manager

    manager = _create_hook_manager()
    hook = NodeTimingHook()
    manager.register(hook)
    def slow_items(x):
        for i in range(3):
            time.sleep(0.05)
            yield i

    pipe = Pipeline([node(lambda x: x + 1, "a", "b", name="plus_one"), node(lambda x: x * 2, "b", "c", name="double"),
                     node(lambda c: (slow_items(c),), "c", ["d"], name="lazy")])
    saved = []

    class Consuming(MemoryDataset):
        def save(self, data):  # consumes the generator, as the project's file datasets do
            saved.extend(data)

    catalog = DataCatalog({"a": MemoryDataset(1), "b": MemoryDataset(), "c": MemoryDataset(), "d": Consuming()})
    with caplog.at_level(logging.INFO, logger="sweettok.hooks"):
        manager.hook.before_pipeline_run(run_params={}, pipeline=pipe, catalog=catalog)
        SequentialRunner().run(pipe, catalog, hook_manager=manager)
        manager.hook.after_pipeline_run(run_params={}, run_result={}, pipeline=pipe, catalog=catalog)
    assert set(hook.seconds) == {"plus_one", "double", "lazy"}
    assert saved == [0, 1, 2] and hook.seconds["lazy"] >= 0.15
    assert "node plus_one took" in caplog.text and "node lazy took" in caplog.text
    assert "node times (3 nodes" in caplog.text
