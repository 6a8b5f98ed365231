"""SSD Explorer: routes to the pages and holds the sidebar shared by all of them.

`make run` -> `streamlit run app.py`. The pages live in `pages/`; the login gate
(`pages/_auth.py`) runs first, then the sidebar (model, image, ground truth) is drawn
here, before the chosen page runs, by `pages/_sidebar.py`.
"""
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `explorer`, `ssd` and `pages._sidebar` import from here
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from explorer.inputs.models import app_torch_threads  # noqa: E402
from pages import _auth, _sidebar, _workspace  # noqa: E402

if torch.get_num_threads() != app_torch_threads():
    torch.set_num_threads(app_torch_threads())

st.set_page_config(page_title="SSD Explorer", page_icon=":mag:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/architecture.py", title="Architecture", icon=":material/account_tree:"),
    st.Page("pages/default_boxes.py", title="Default boxes", icon=":material/grid_on:"),
    st.Page("pages/dataset.py", title="Dataset coverage", icon=":material/dataset:"),
    st.Page("pages/matching.py", title="Matching & hard negatives", icon=":material/join_inner:"),
    st.Page("pages/per_scale.py", title="Per-scale detections", icon=":material/layers:"),
    st.Page("pages/nms.py", title="NMS", icon=":material/filter_alt:"),
    st.Page("pages/trace.py", title="Trace one object", icon=":material/timeline:"),
    st.Page("pages/augment.py", title="Augmentation", icon=":material/auto_fix_high:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/analytics:"),
    st.Page("pages/paper_lab.py", title="Paper lab", icon=":material/science:"),
]
if (ROOT / "pages" / "training.py").is_file():  # written by the training engineer
    pages.append(st.Page("pages/training.py", title="Training", icon=":material/model_training:"))

# The gate (pages/_auth.py) runs before the sidebar and the page: a foreign Host header
# or an exposed server without a password shows nothing else, and a configured password
# is asked for first. Until then the page list stays hidden.
# .streamlit/config.toml hides the menu that Streamlit's pages/-folder mode draws on a fresh
# server's first run (every pages/*.py, helpers included); the app's own menu is shown.
st.set_option("client.showSidebarNavigation", True)
nav = st.navigation(pages, position="sidebar" if _auth.signed_in() else "hidden")
_auth.gate()
_workspace.follow_goto()  # a page asked for by a callback (the workspace is already set)
_sidebar.sidebar()
nav.run()
