"""Importing tensorflow_datasets without TensorFlow.

tensorflow-datasets 4.9.10 imports ``importlib_resources`` (the PyPI backport)
when it locates a builder defined inside a package, but declares that
dependency only for Python < 3.9. On Python >= 3.9 the standard library's
``importlib.resources`` offers the same ``abc.Traversable`` that TFDS needs, so
when the backport is missing we register the standard module under its name.
Installing ``importlib_resources`` makes this a no-op.
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.resources.abc  # makes ``importlib.resources.abc`` an attribute
import sys


def ensure_importlib_resources() -> None:
  """Makes ``import importlib_resources`` work (no-op when it is installed)."""
  try:
    importlib.import_module("importlib_resources")
  except ImportError:
    sys.modules.setdefault("importlib_resources", importlib.resources)


ensure_importlib_resources()

import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ["tfds", "ensure_importlib_resources"]
