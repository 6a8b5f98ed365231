"""A small, readable PyTorch implementation of SSD (Liu et al. 2016) that keeps every
intermediate stage visible. No UI imports here: see explorer/ and pages/ for that."""
