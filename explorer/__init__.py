"""SSD Explorer, the plain-Python half of the app: figure builders and data prep.

Nothing here imports streamlit, so every figure and table a page shows is built by
a function that a unit test also calls. Pages (`pages/*.py`) only read widgets,
call these functions and show the result.
"""
