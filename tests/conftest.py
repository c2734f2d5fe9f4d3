"""Shared test fixtures: where the real media lives, and skipping cleanly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """../shared/media, or a clear skip when this checkout has no ../shared beside it."""
    if not (SHARED_MEDIA / "MANIFEST.tsv").exists():
        pytest.skip(f"real media not found at {SHARED_MEDIA} (needs ../shared beside the repo)")
    return SHARED_MEDIA
