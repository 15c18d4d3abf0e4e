"""Shared fixtures: the real data beside the checkout (skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a pytest skip naming what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it lives beside the checkout)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture
def bold_100sp() -> Path:
    return shared_path("bold_coi", "bold_coi_100sp.tsv")


@pytest.fixture
def bold_1826sp() -> Path:
    return shared_path("bold_coi", "bold_coi_1826sp.tsv")


@pytest.fixture
def bioscan_photos() -> Path:
    return shared_path("bioscan_photos")


@pytest.fixture
def eu_moths() -> Path:
    return shared_path("eu_moths")
