"""Shared fixtures: the broker under test is named by STROM_BOOTSTRAP.

scripts/test.sh starts `strom serve` on a free port and exports it; to run
these tests by hand, start a broker and export STROM_BOOTSTRAP=HOST:PORT.
"""

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def bootstrap() -> str:
    servers = os.environ.get("STROM_BOOTSTRAP")
    if not servers:
        pytest.fail(
            "STROM_BOOTSTRAP is not set: run scripts/test.sh, or start "
            "`strom serve` and export STROM_BOOTSTRAP=HOST:PORT"
        )
    return servers


@pytest.fixture(scope="session")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed (scripts/test.sh installs it with apt-get)")
    return path
