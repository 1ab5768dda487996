"""Custom Kedro datasets, one module each (catalog ``type:`` names the module):

- ``sweettok.io.codebook_dataset.LanguageCodebookDataset``: the language codebook;
- ``sweettok.io.clip_cache_dataset.ClipCacheDataset``: the clip cache;
- ``sweettok.io.image_cache_dataset.ImageCacheDataset``: the image cache;
- ``sweettok.io.proxy_codes_dataset.ProxyCodesDataset``: proxy code ids;
- ``sweettok.io.model_dataset.ModelDataset``: an exported model checkpoint.

Nothing is imported here, so that code using one dataset does not depend on the others.
"""
