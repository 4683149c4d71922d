"""Shared test fixtures: the real data folder beside the project, tiny synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: the real radiographs and MNIST files are not on this machine."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data folder {SHARED_DATA} is absent (it sits beside the project in development "
            "and CI)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def cxr_dir(shared_data: Path) -> Path:
    """The chest radiograph folder of ../shared/data."""
    path = shared_data / "cxr"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def smooth_image() -> np.ndarray:
    """A 64x64 float32 image in [0, 1] with smooth structure and edges."""
    y, x = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0
    img = 0.2 + 0.5 * np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) / 0.05)
    img[40:56, 8:24] = 0.9
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """A real Orthanc with its DICOMweb plugin, one per test module (tests/orthanc_server.py); skips
    where absent."""
    from orthanc_server import start_orthanc

    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture
def login(orthanc, monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials of `orthanc`'s user in the environment (tests/orthanc_server.py), no
    token."""
    from orthanc_server import USER

    from pipeline.pacs.auth import PASSWORD_VAR, TOKEN_VAR, USER_VAR

    monkeypatch.delenv(TOKEN_VAR, raising=False)
    monkeypatch.setenv(USER_VAR, USER)
    monkeypatch.setenv(PASSWORD_VAR, orthanc.password)


@pytest.fixture(scope="module")
def tiny_unet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny U-Net checkpoint (tests/tiny_models.py), one per test module."""
    from tiny_models import save_tiny_unet

    return save_tiny_unet(tmp_path_factory.mktemp("model") / "tiny.pt")
