"""hvd_magtag: train and study music auto-tagging CNNs at scale (TensorFlow + Horovod).

Importing the package is cheap and has no side effects: TensorFlow is imported lazily by the
modules that need it.
"""

__version__ = "0.1.0"
