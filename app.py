"""SSD Explorer: routes to the pages and holds the sidebar shared by all of them."""
import streamlit as st

st.set_page_config(page_title="SSD Explorer", layout="wide")

home = st.Page("pages/home.py", title="Home", default=True)
nav = st.navigation([home])
nav.run()
