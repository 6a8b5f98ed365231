import streamlit as st

st.title("SSD Explorer")
st.markdown(
    "See every step of the Single Shot MultiBox Detector (Liu et al. 2016) on your own "
    "images: default boxes per feature map, matching and hard negatives, per-scale "
    "detections and the final non-maximum suppression."
)
