"""retained_heap: freed blocks are reused instead of mapped and faulted in again."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys

import pytest

from sweettok.training.loop import LoopConfig
from sweettok.training.memory import retained_heap
from sweettok.typed_params import ParamError


PROBE = """
import json, resource, sys, torch
from sweettok.training.memory import retained_heap

def faults(policy):
    with retained_heap(policy) as applied:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(8):
            block = torch.empty(16 << 20, dtype=torch.float32)  # 64 MiB, well above the mmap threshold
            block.fill_(1.0)  # touch every page
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, applied

# glibc's defaults first: once the keep policy has left freed blocks on the heap, the process reuses them
print(json.dumps([faults("system"), faults("keep")]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy acts on glibc's allocator only")
def test_keep_policy_stops_refaulting_freed_blocks():
    # a fresh process: other tests' training loops leave freed blocks on this one's heap
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    (system, applied_system), (keep, applied_keep) = json.loads(out.strip().splitlines()[-1])
    assert applied_keep and not applied_system
    pages = (64 << 20) // resource.getpagesize()
    assert system >= 6 * pages  # every allocation mapped and faulted in anew
    assert keep <= 2.5 * pages, (keep, system)  # the first one (at most twice over), then reused


def test_policy_is_a_checked_loop_parameter():
    assert LoopConfig(total_steps=1).malloc == "keep"
    with pytest.raises(ParamError, match="malloc"):
        LoopConfig(total_steps=1, malloc="jemalloc")
    with pytest.raises(ValueError, match="malloc policy"):
        with retained_heap("never"):
            pass
