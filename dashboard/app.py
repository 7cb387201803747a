"""rksim dashboard: `streamlit run dashboard/app.py` (or `make run`).

The entry point only sets the page up and routes; each page lives in `dashboard/views/` and
registers here with `st.Page`. Pages draw widgets and `simulator.plots` figures; every run goes
through `dashboard/runs.py` into `simulator.runner` (DESIGN rule 8: a thin dashboard).
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="rksim", page_icon=":material/hub:", layout="wide")

# Pages live in views/, not pages/: Streamlit treats a pages/ folder next to the entry script as
# a legacy (v1) multipage app until st.navigation has run once in the server process, so the
# first visitor of a deep link such as /playground would get the bare page without this entry.
PAGES = [
    st.Page(
        "views/playground.py",
        title="Playground",
        icon=":material/science:",
        default=True,
    ),
    st.Page("views/lessons.py", title="Lessons", icon=":material/school:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("views/timeline.py", title="Timeline", icon=":material/timeline:"),
    st.Page("views/guide.py", title="Decision guide", icon=":material/fact_check:"),
    st.Page("views/sweeps.py", title="Sweeps", icon=":material/ssid_chart:"),
]

st.navigation(PAGES).run()
