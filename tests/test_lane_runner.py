"""LaneRunner: longest chain first, branches side by side, threads shared out per node, node
times back in the main process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest
import torch
from kedro.pipeline import Pipeline, node

from sweettok import runner
from sweettok.hooks import NodeThreadsHook
from sweettok.runner import node_priorities, usable_cores


def _f(*args):
    return 0


def test_priorities_put_the_longest_chain_first_whatever_the_names():
    pipe = Pipeline([
        node(_f, "x", "r", name="root"),
        node(_f, "r", "z1", name="z1"), node(_f, "z1", "z2", name="z2"), node(_f, "z2", "z3", name="z3"),
        node(_f, "r", "a", name="a_leaf"),
        node(_f, "r", "m1", name="m1"), node(_f, "m1", "m2", name="m2"),
        node(_f, "r", "b1", name="b1"), node(_f, "r", "b2", name="b2"),
        node(_f, ["b1", "b2"], "bj", name="b_join"),
    ])
    key = {n.name: k for n, k in node_priorities(pipe).items()}
    ready = ["a_leaf", "b1", "b2", "m1", "z1"]
    # z1 heads a chain of 2 more nodes, m1 and b1 / b2 of 1 more (b1 before b2: same chain, same
    # number below, names), a_leaf of none
    assert sorted(ready, key=key.__getitem__) == ["z1", "b1", "b2", "m1", "a_leaf"]
    assert key["root"][0] == -3 and key["z3"][0] == 0 and key["b1"][:2] == (-1, -1)


def test_a_training_node_that_is_not_paired_starts_alone_and_nothing_starts_beside_it():
    n = {name: node(_f, "x", name, name=name) for name in ("fit", "a", "b", "c")}
    alone = {"fit"}
    pick = lambda ready, running, free: [x.name for x in runner.nodes_to_start(  # noqa: E731
        [n[r] for r in ready], [n[r] for r in running], free, alone)]
    assert pick(["a", "b"], [], 2) == ["a", "b"]  # no training node: as many as there are free workers
    assert pick(["a", "b"], ["c"], 1) == ["a"]
    assert pick(["fit", "a"], [], 2) == ["fit"]  # alone, though a second worker is free
    assert pick(["fit", "a"], ["b"], 1) == []  # waits for the other lane to finish; "a" waits too
    assert pick(["a", "fit", "b"], [], 2) == ["a"]  # "a" comes first; "fit" waits for it, "b" for "fit"
    assert pick(["a", "b"], ["fit"], 1) == []  # nothing starts beside it
    assert pick(["a"], [], 0) == []


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    runner._STATE = None


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_threads_hook_shares_the_cores_among_the_nodes_running(restore_threads, monkeypatch, in_flight):
    monkeypatch.setattr(runner, "usable_cores", lambda: 4)
    runner._STATE = {"in_flight": SimpleNamespace(value=in_flight), "seconds": {}}
    hook = NodeThreadsHook()
    hook.before_node_run(node(_f, "x", "y", name="scoring"))
    assert torch.get_num_threads() == {1: 4, 2: 2, 3: 1}[in_flight]
    hook.before_node_run(node(_f, "x", "y", name="fit", tags=["training"]))
    assert torch.get_num_threads() == 4  # its loop's governor takes it from there


def test_training_nodes_side_by_side_are_paired_and_a_chain_is_not():
    pipe = Pipeline([
        node(_f, "x", "p", name="proxy", tags=["training"]),
        node(_f, "p", "t", name="phase1", tags=["training"]),
        node(_f, "t", "ids", name="ids"),
        node(_f, "ids", "lm", name="lm", tags=["training"]),
        node(_f, "t", "img", name="image_ft", tags=["training"]),
        node(_f, "t", "score", name="scoring"),
        node(_f, "img", "img_score", name="image_scoring"),
    ])
    # proxy -> phase1 is a chain above both; lm and image_ft have no path between them
    assert runner.paired_training_nodes(pipe) == {"lm", "image_ft"}
    assert runner.paired_training_nodes(pipe.only_nodes("proxy", "phase1", "ids", "lm")) == set()
    assert runner.paired_training_nodes(Pipeline([])) == set()


@pytest.mark.parametrize("lanes, threads", [(1, 4), (2, 2), (4, 1), (8, 1)])
def test_threads_hook_fixes_a_paired_training_node_at_cores_per_lane(restore_threads, monkeypatch, lanes, threads):
    monkeypatch.setattr(runner, "usable_cores", lambda: 4)
    runner._STATE = {"in_flight": SimpleNamespace(value=1), "seconds": {}, "lanes": lanes,
                     "paired_training": frozenset({"lm"})}
    hook = NodeThreadsHook()
    hook.before_node_run(node(_f, "x", "y", name="lm", tags=["training"]))
    assert torch.get_num_threads() == threads
    hook.before_node_run(node(_f, "x", "y", name="proxy", tags=["training"]))
    assert torch.get_num_threads() == 4  # not paired: every core, then its governor


def test_threads_hook_does_nothing_outside_a_lane_runner(restore_threads):
    torch.set_num_threads(1)
    runner._STATE = None
    NodeThreadsHook().before_node_run(node(_f, "x", "y", name="scoring"))
    assert torch.get_num_threads() == 1


# A real run in a child process: configure_project changes process-wide settings, and the workers
# build their hooks from them (NodeThreadsHook, NodeTimingHook).
_NODES = textwrap.dedent("""
    import functools, json, os, time, torch
    from kedro.framework.project import configure_project
    from kedro.io import MemoryDataset, SharedMemoryDataCatalog
    from kedro.pipeline import Pipeline, node
    from sweettok import runner
    from sweettok.runner import LaneRunner

    def stamp(name, *_):  # each node leaves its threads and start / end times in a file
        t0 = time.time()
        time.sleep(0.4)
        with open(f"{os.environ['LANES']}-{name}.json", "w") as f:
            json.dump({"threads": torch.get_num_threads(), "start": t0, "end": time.time()}, f)
        return name

    def at(name):
        return functools.partial(stamp, name)

    def stamps(lanes, names):
        found = {}
        for name in names:
            with open(f"{lanes}-{name}.json") as f:
                found[name] = json.load(f)
        return found

    configure_project("sweettok")
""")
_SCRIPT = _NODES + textwrap.dedent("""
    pipe = Pipeline([
        node(at("root"), "seed", "root", name="root"),
        node(at("z1"), "root", "z1", name="z1"), node(at("z2"), "z1", "z2", name="z2"),
        node(at("a"), "root", "a", name="a_scoring"),
        node(at("t"), "root", "t", name="b_fit", tags=["training"]),
        node(at("u"), "root", "u", name="c_fit", tags=["training"]),
        node(at("end"), ["z2", "a", "t", "u"], "end", name="join"),
    ])
    out = {}
    for workers in (1, 2):
        os.environ["LANES"] = str(workers)
        catalog = SharedMemoryDataCatalog({"seed": MemoryDataset(0)})
        LaneRunner(max_workers=workers).run(pipe, catalog)
        out[workers] = {"stamps": stamps(workers, ("root", "z1", "z2", "a", "t", "u", "end")),
                        "seconds": runner.take_reported_node_seconds()}
    print("RESULT" + json.dumps(out))
""")


def test_a_real_run_overlaps_branches_and_reports_every_node(tmp_path):
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    out = {int(k): v for k, v in json.loads(line[len("RESULT"):]).items()}
    cores = usable_cores()
    names = {"root", "z1", "z2", "a_scoring", "b_fit", "c_fit", "join"}
    for workers in (1, 2):
        assert set(out[workers]["seconds"]) == names, out[workers]["seconds"]
        assert all(0.35 < s < 30 for s in out[workers]["seconds"].values())
    # one lane: after root, z1 (two nodes before join) runs before the one-node branches although
    # "a_scoring", "b_fit" and "c_fit" sort before it by name; then z2, a_scoring, b_fit and c_fit
    # tie on the chain and go by name
    s1 = out[1]["stamps"]
    order = sorted(s1, key=lambda k: s1[k]["start"])
    assert order == ["root", "z1", "a", "t", "u", "z2", "end"]
    assert s1["a"]["threads"] == cores and s1["root"]["threads"] == cores
    assert s1["t"]["threads"] == s1["u"]["threads"] == cores  # one lane: cores // 1
    # two lanes: z1 and the next branch run at the same time, each node with its share of cores
    s2 = out[2]["stamps"]
    assert s2["z1"]["start"] < s2["a"]["end"] and s2["a"]["start"] < s2["z1"]["end"] or \
        s2["z1"]["start"] < s2["t"]["end"] and s2["t"]["start"] < s2["z1"]["end"]
    assert s2["root"]["threads"] == cores and s2["end"]["threads"] == cores
    assert s2["a"]["threads"] == max(1, cores // 2)
    # two training nodes side by side: a lane each, fixed (no governor)
    assert s2["t"]["threads"] == s2["u"]["threads"] == max(1, cores // 2)
    total = max(v["end"] for v in s2.values()) - min(v["start"] for v in s2.values())
    serial = max(v["end"] for v in s1.values()) - min(v["start"] for v in s1.values())
    assert total < serial - 0.5  # 7 x 0.4 s one after another; 5 steps of 0.4 s with two lanes


# The training chain of the default pipeline (proxy -> phase 1) with a short side node that is
# ready at the same time as its first node (the image cache beside the proxy), and two paired
# training nodes after it (the LM and image fine-tuning).
_ALONE = _NODES + textwrap.dedent("""
    os.environ["LANES"] = "2"
    pipe = Pipeline([
        node(at("proxy"), "seed", "p", name="proxy_fit", tags=["training"]),
        node(at("side"), "seed", "s", name="side_cache"),
        node(at("phase1"), "p", "t", name="phase1_fit", tags=["training"]),
        node(at("lm"), "t", "l", name="lm_fit", tags=["training"]),
        node(at("img"), "t", "i", name="img_fit", tags=["training"]),
        node(at("end"), ["l", "i", "s"], "e", name="join"),
    ])
    LaneRunner(max_workers=2).run(pipe, SharedMemoryDataCatalog({"seed": MemoryDataset(0)}))
    print("RESULT" + json.dumps(stamps(2, ("proxy", "side", "phase1", "lm", "img", "end"))))
""")


def test_a_real_run_keeps_the_training_chain_alone(tmp_path):
    done = subprocess.run([sys.executable, "-c", _ALONE], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    s = json.loads(line[len("RESULT"):])

    def overlap(a: str, b: str) -> bool:
        return s[a]["start"] < s[b]["end"] and s[b]["start"] < s[a]["end"]

    # the side node was ready with the proxy and had a lane free, but runs beside neither the
    # proxy nor phase 1 (both come before it: they head longer chains)
    assert s["side"]["start"] >= s["proxy"]["end"]
    assert not overlap("phase1", "side")
    assert s["phase1"]["start"] >= s["proxy"]["end"]
    # the paired training nodes still run side by side
    assert overlap("lm", "img")


_FAILING = textwrap.dedent("""
    import time
    from kedro.framework.project import configure_project
    from kedro.io import MemoryDataset, SharedMemoryDataCatalog
    from kedro.pipeline import Pipeline, node
    from sweettok.runner import LaneRunner

    def slow(x):
        time.sleep(60)
        return x

    def boom(x):
        time.sleep(0.5)
        raise ValueError("boom in the scoring lane")

    configure_project("sweettok")
    pipe = Pipeline([node(slow, "seed", "a", name="long_training"), node(boom, "seed", "b", name="scoring")])
    t0 = time.time()
    try:
        LaneRunner(max_workers=2).run(pipe, SharedMemoryDataCatalog({"seed": MemoryDataset(0)}))
    except ValueError as error:
        print("RAISED", repr(str(error)), round(time.time() - t0, 1))
""")


def test_a_failing_node_stops_the_other_lane_instead_of_waiting_for_it(tmp_path):
    t0 = time.time()
    done = subprocess.run([sys.executable, "-c", _FAILING], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    wall = time.time() - t0
    line = next((x for x in done.stdout.splitlines() if x.startswith("RAISED")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-3000:]
    assert "boom in the scoring lane" in line
    assert float(line.split()[-1]) < 20 and wall < 50  # the other node sleeps 60 s
    assert "stopping long_training" in done.stdout + done.stderr
