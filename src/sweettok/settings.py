"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from sweettok.hooks import PanderaValidationHook

HOOKS = (PanderaValidationHook(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
