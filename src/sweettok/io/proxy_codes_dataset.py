"""Kedro dataset of the proxy code ids (see :mod:`sweettok.io.directory`)."""

from __future__ import annotations

from sweettok.io.directory import DirectoryDataset


class ProxyCodesDataset(DirectoryDataset):
    """Proxy code ids; loads a ``CodeTable``, saves a ``PendingProxyCodes``."""

    def load(self):
        from sweettok.data.codes import load_code_table

        return load_code_table(self._filepath)
