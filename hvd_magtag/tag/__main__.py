"""``python -m hvd_magtag.tag``: see :mod:`hvd_magtag.tag.cli`."""

import sys

from hvd_magtag.tag.cli import main

sys.exit(main())
