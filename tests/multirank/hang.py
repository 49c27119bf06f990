"""A job that never finishes (for the runner's cleanup test): each rank writes ``started.rank<r>`` and sleeps.

No TensorFlow or Horovod import, so the ranks are up within the launcher's start-up time.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

RANK_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rank = next(os.environ[k] for k in RANK_ENV if k in os.environ)
    (args.out / f"started.rank{rank}").write_text(str(os.getpid()))
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
