"""Suite-wide fixtures."""
import sys

import pytest


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest runs page scripts as `__main__` and leaves sys.modules["__main__"] pointing
    at its temp script; multiprocessing's spawn would then re-run that script in every child (tests
    of the job store and worker start processes), so put the real one back after each test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
