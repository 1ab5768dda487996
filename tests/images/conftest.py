"""Fixtures of the image tests (one thread: tests/conftest.py)."""

from __future__ import annotations

import pytest
from image_helpers import make_video_tokenizer

from sweettok.models.tokenizer import VideoTokenizer


@pytest.fixture
def video_tokenizer() -> VideoTokenizer:
    return make_video_tokenizer(0)
