"""A one-file `st.data_editor` (no other widget, no `st.rerun`): the floor for the Home page's
ground-truth table. `benchmarks/bench_data_editor_tab.py` types into it to show that an
edit lost on Tab/Enter at machine speed is lost here too, in Streamlit's grid itself."""
import pandas as pd
import streamlit as st

df = pd.DataFrame([{"label": "cat", "x1": 8.0, "y1": 40.0, "x2": 88.0, "y2": 120.0}])
edited = st.data_editor(df, num_rows="dynamic", hide_index=True, key="table", width="stretch",
                        column_config={c: st.column_config.NumberColumn(c, format="%g") for c in ("x1", "y1", "x2", "y2")})
st.write(f"x1={edited['x1'].iloc[0]:g}")
