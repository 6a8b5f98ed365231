"""Shared test setup.

torch's default of one thread per core makes small ops up to ~100x slower when other
processes (a training subprocess, the Streamlit server of the browser test) compete
for this machine's 2 cores; one intra-op thread keeps the suite fast and steady.
"""
import torch

torch.set_num_threads(1)
