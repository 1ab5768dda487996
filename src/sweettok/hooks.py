"""Kedro hooks: every table in the catalog is validated by its pandera schema.

Tables are checked when a node is about to save them and again when a node loads
them, so a hand-edited or stale file is caught before it reaches a model.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl

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
