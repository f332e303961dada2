"""Regenerates the seed-sized sample requests in this folder (`fanflow generate` makes others)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanflow.samples import write_seed_sizes

if __name__ == "__main__":
    for path in write_seed_sizes(Path(__file__).resolve().parent):
        print(path.name)
