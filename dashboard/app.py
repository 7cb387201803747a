"""rksim dashboard: `streamlit run dashboard/app.py` (or `make run`).

The entry point only sets the page up and routes; each page lives in `dashboard/pages/` and
registers here with `st.Page`. Pages draw widgets and `simulator.plots` figures; every run goes
through `dashboard/runs.py` into `simulator.runner` (DESIGN rule 8: a thin dashboard).
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="rksim", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page(
        "pages/playground.py",
        title="Playground",
        icon=":material/science:",
        url_path="playground",
        default=True,
    ),
]

st.navigation(PAGES).run()
