"""Open the networks up: feature maps you can listen to, their spectra, and each layer's filters.

- :mod:`~hvd_magtag.analysis.featuremaps`: extract every conv layer's maps for a clip, save them (npz) and
  render each channel as a WAV at the audio rate, with an HTML / Markdown / CSV index.
- :mod:`~hvd_magtag.analysis.filters`: first-layer kernel frequency responses, per-layer map spectra averaged
  over clips, and each layer's transfer estimate against the level below, on the audio-frequency axis.
- :mod:`~hvd_magtag.analysis.plots`: channel x frequency heatmaps (log or mel axis), PNG + SVG, numbers beside.

Command line::

    python -m hvd_magtag.analysis featuremaps RUN_DIR --clip PATH_OR_ID [--layers conv1,conv3] [--compare RUN_DIR2]
    python -m hvd_magtag.analysis filters RUN_DIR [--clips N] [--axis log|mel]
"""

#: Where a conv layer's map is taken: its own output, or after the batch norm / activation following it.
#: (Here, not in :mod:`~hvd_magtag.analysis.introspect`, so the command line's ``--help`` needs no TensorFlow.)
TAPS = ("conv", "activation")
