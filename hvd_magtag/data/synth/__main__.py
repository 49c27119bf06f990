"""``python -m hvd_magtag.data.synth``: see :func:`hvd_magtag.data.synth.writer.main`."""

from hvd_magtag.data.synth.writer import main

if __name__ == "__main__":
    raise SystemExit(main())
