"""Run a worker script under `torchrun --nproc_per_node N` on the loopback interface, for DDP tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_torchrun(worker: Path, args: dict, processes: int = 2, timeout: int = 240) -> str:
    """Run ``worker`` with ``json.dumps(args)`` as its argument; fail with its output unless every rank succeeds."""
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"}}
    env.update(OMP_NUM_THREADS="1", KEDRO_DISABLE_TELEMETRY="1")
    # torchrun makes a torchelastic_* log directory in the temporary directory and never removes
    # it: give the launch its own, removed here
    with tempfile.TemporaryDirectory(prefix="sweettok-torchrun-") as tmp:
        env["TMPDIR"] = tmp
        # its own session, so that a hung rank is killed with the launcher, not left behind
        proc = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
             "127.0.0.1", "--master_port", str(free_port()), str(worker), json.dumps(args)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise AssertionError(f"torchrun did not finish in {timeout} s:\n" + out[-3000:]) from None
    assert proc.returncode == 0, out[-5000:]
    return out
