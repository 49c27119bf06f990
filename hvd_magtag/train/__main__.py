"""``python -m hvd_magtag.train``: see :mod:`hvd_magtag.train`."""

import sys

from hvd_magtag.train.command import main

sys.exit(main())
