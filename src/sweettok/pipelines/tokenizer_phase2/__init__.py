"""The `tokenizer_phase2` pipeline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
