"""tests/builder: the product's page analyses memoized per test process (tests/memo.py)."""
import pytest

from tests.memo import memoize_page_analysis


@pytest.fixture(autouse=True)
def _memoized_page_analysis(monkeypatch):
    memoize_page_analysis(monkeypatch)
