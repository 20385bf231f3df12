import shutil

import pytest

from sglang_ext.patching import PatchSeries
from tests._support.pristine import pristine_sglang


@pytest.fixture(scope="session")
def pristine_tree():
    return pristine_sglang()


@pytest.fixture()
def tree(tmp_path, pristine_tree):
    """A private copy of the pristine 0.4.7 package to patch."""
    dst = tmp_path / "sglang"
    shutil.copytree(pristine_tree, dst)
    return dst


@pytest.fixture(scope="session")
def series():
    return PatchSeries.load()
