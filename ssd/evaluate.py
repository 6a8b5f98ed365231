"""`python -m ssd.evaluate`: the command-line entry; the code is in `ssd.evaluation.evaluate`."""
from ssd.evaluation.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
