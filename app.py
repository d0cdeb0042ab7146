"""Noisy Label Lab: entry point. `streamlit run app.py`"""
import streamlit as st

from ui.common import presenter_toggle, redraw_tables_if_presenter_changed, workspace_picker
from ui.runs import cluster_sidebar

st.set_page_config(page_title="Noisy Label Lab", page_icon=":material/label_off:", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data & noise", icon=":material/shuffle:", url_path="data"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/curves.py", title="Curves & compare", icon=":material/monitoring:", url_path="curves"),
    st.Page("app_pages/review.py", title="Review", icon=":material/fact_check:", url_path="review"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.caption("Noisy Label Lab: train on noisy labels, see what the noise does, find and fix wrong labels.")
    workspace_picker()
    presenter_toggle()
    cluster_sidebar()
try:
    page.run()
finally:   # also after a page's st.stop()
    redraw_tables_if_presenter_changed()
