"""`python -m ssd.tune_boxes`: the command-line entry; the code is in `ssd.tuning.tune_boxes`."""
from ssd.tuning.tune_boxes import main

if __name__ == "__main__":
    raise SystemExit(main())
