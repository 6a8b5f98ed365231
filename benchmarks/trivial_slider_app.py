"""The floor for page responsiveness: a one-slider Streamlit app (Streamlit's own round trip)."""
import streamlit as st

value = st.slider("Value", 0, 100, 50, key="v")
st.write(f"value: {value}")
