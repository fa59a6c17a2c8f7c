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


# The files that take longest, longest first. `make test` runs a file per xdist worker
# (--dist loadfile) in collection order (--no-loadscope-reorder), so these start at once and the
# many quick files fill the other workers beside them. xdist's default order (most tests first) put
# the 2-test, 5-minute shipped-checkpoint file last, alone on one core: 8 min 18 s on 2 cores,
# 2026-12-06 (`pytest --durations=15` in docs/speed.md). A file here should hold more than 2 tests
# (test_shipped_checkpoint.py asks one per image): xdist gives a worker its next file as soon as
# 2 or fewer of its tests are pending, and that file then waits behind the long test.
SLOWEST_FILES = (
    "tests/integration/test_shipped_checkpoint.py",
    "tests/e2e/test_app_browser.py",
    "tests/integration/test_worker.py",
    "tests/integration/test_train_real.py",
    "tests/integration/test_models_real.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return SLOWEST_FILES.index(path) if path in SLOWEST_FILES else len(SLOWEST_FILES)
    items.sort(key=rank)          # stable: every other file keeps its collection order
