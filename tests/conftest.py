"""Shared fixtures: a tiny embedded dataset generated once per test session."""

from __future__ import annotations

import os

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from sweettok.data.synthetic import SyntheticConfig, generate_dataset

@pytest.fixture
def one_thread():
    """Run small models on one intra-op thread: on a shared 2-core machine, two threads that
    spin-wait on each other make small ops many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(n_classes=8, groups=2, clips_per_group=1, test_groups=1, frames=24, height=48, width=64,
            seed=3, workers=1)


@pytest.fixture(scope="session")
def tiny_config() -> SyntheticConfig:
    return SyntheticConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_config):
    """A 16-video dataset in UCF-101 layout (8 classes, one train and one test video each)."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    return generate_dataset(root, tiny_config)
