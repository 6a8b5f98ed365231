"""Write the app's sample scenes: `python -m ssd.data.samples --out samples`.

samples/cat_and_dog.png (the paper's Figure 1 lesson) plus a few busy procedural
scenes, with their boxes in samples/annotations.json (see
`ssd.data.procedural.write_samples`).
"""
from __future__ import annotations

import argparse

from ssd.data.procedural import write_samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssd.data.samples", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="samples", help="output folder")
    p.add_argument("--num-scenes", type=int, default=4)
    a = p.parse_args(argv)
    for name, v in write_samples(a.out, a.num_scenes).items():
        print(name, v["label_names"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
