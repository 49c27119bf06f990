"""``python -m hvd_magtag.data.tfrecord``: see :func:`hvd_magtag.data.tfrecord.extract.main`."""

import sys

from hvd_magtag.data.tfrecord.extract import main

if __name__ == "__main__":
    sys.exit(main())
