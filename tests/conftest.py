import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def shared_data_dir() -> Path | None:
    """The directory named by DGM_DATA_DIR, when it is set and exists."""
    d = os.environ.get("DGM_DATA_DIR")
    return Path(d) if d and Path(d).is_dir() else None
