"""hvd_magtag: train and study music auto-tagging CNNs at scale (TensorFlow + Horovod).

Importing the package is cheap and has no side effects: TensorFlow is imported lazily by the
modules that need it. The tagging API is re-exported lazily (first attribute access imports
:mod:`hvd_magtag.tag`)::

    import hvd_magtag
    hvd_magtag.top_tags("song.mp3", model="runs/demo", top_k=10)
"""

__version__ = "0.1.0"

#: attribute -> module that defines it, imported on first access (PEP 562)
_LAZY = {
    "top_tags": "hvd_magtag.tag.api",
    "taggram": "hvd_magtag.tag.api",
    "embed": "hvd_magtag.tag.api",
    "Tagger": "hvd_magtag.tag.tagger",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hvd_magtag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
