"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from sweettok.hooks import NodeThreadsHook, NodeTimingHook, PanderaValidationHook

HOOKS = (PanderaValidationHook(), NodeTimingHook(), NodeThreadsHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
# `parameters` are soft-merged: a run environment (conf/paper, conf/local) holds only the keys
# that differ from conf/base, merged key by key at every depth (lists are replaced whole).
# Catalog and credentials keep Kedro's default (an environment's top-level entry replaces
# base's). `sweettok.cli` builds its loader from these same settings.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
