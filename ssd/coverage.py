"""`python -m ssd.coverage`: the command-line entry; the code is in `ssd.tuning.coverage`."""
from ssd.tuning.coverage import main

if __name__ == "__main__":
    raise SystemExit(main())
