"""`python -m ssd.ablate`: the command-line entry; the code is in `ssd.ablation.main`."""
from ssd.ablation.main import main

if __name__ == "__main__":
    raise SystemExit(main())
