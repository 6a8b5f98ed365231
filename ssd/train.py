"""`python -m ssd.train`: the command-line entry; the code is in `ssd.training.train`."""
from ssd.training.train import main

if __name__ == "__main__":
    raise SystemExit(main())
