"""Side-by-side timings (ours vs torchvision / brute force / a trivial app). Not part of the library."""
