"""`codebook`: training captions -> vocabulary table and language codebook prior."""

from sweettok.pipelines.codebook.pipeline import create_pipeline

__all__ = ["create_pipeline"]
