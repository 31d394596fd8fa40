"""The test suite's own plumbing (tests/conftest.py): workers' cores and the order files run in."""

import os
from pathlib import Path

import pytest

from tests.conftest import LONGEST_FIRST


def test_the_longest_files_named_exist():
    """A renamed or deleted file would drop out of the order without a word."""
    here = Path(__file__).parent
    assert [name for name in LONGEST_FIRST if not (here / name).is_file()] == []


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only a pytest-xdist worker is pinned")
def test_a_worker_runs_on_its_own_share_of_the_cores():
    """Workers never share a core while there are enough of them (so torch threads never
    oversubscribe), and the harness gives torch the cores this worker has."""
    from harness.train.training import cores

    count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    mine = os.sched_getaffinity(0)
    assert cores() == len(mine) and len(mine) <= max(1, (os.cpu_count() or 1) // count)
