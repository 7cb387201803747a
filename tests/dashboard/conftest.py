"""Dashboard tests start without cached runs or scenario lists, and leave none behind."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import streamlit as st
from support import REPO_ROOT

# The pages' helper modules (forms, links, ...) sit next to app.py, which Streamlit puts on
# sys.path; the tests import them the same way.
sys.path.insert(0, str(REPO_ROOT / "dashboard"))


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
