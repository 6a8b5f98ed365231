"""Plotly figure and table builders, one module per page topic (no Streamlit)."""
