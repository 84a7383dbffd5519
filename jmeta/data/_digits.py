"""The 8x8 handwritten digits that scikit-learn ships, for few-shot tasks (no download)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jmeta.data import _loader
from jmeta.data import _splits
from jmeta.data._omniglot import FewShotSplits


def load_digits(*, valid: float = 0.2, test: float = 0.2) -> FewShotSplits:
  """The digits of ``sklearn.datasets.load_digits`` as class-indexed arrays.

  1,797 images of 8x8 pixels (UCI "Optical Recognition of Handwritten
  Digits"), 174 to 183 per digit; each digit keeps its first 174 images (the
  smallest class's count: 57 images are left out so that the array is
  rectangular), cut by :func:`example_split` into train / validation / test
  images. All ten digits appear in every split: meta-test tasks are new pairs
  (or N-tuples) of digits on held-out images. Pixel values 0..16 are scaled to
  ``[0, 1]``. The data ship inside scikit-learn: nothing is downloaded.

  Args:
    valid: fraction of each digit's images for validation.
    test: fraction for meta-test.

  Returns:
    :class:`FewShotSplits` of float32 arrays of shape ``(10, n, 8, 8, 1)``.
  """
  from sklearn.datasets import load_digits as sklearn_digits  # pylint: disable=import-outside-toplevel
  data = sklearn_digits()
  index, _ = _loader.group_by_class(np.asarray(data.target), what="sklearn digits")
  images = np.asarray(data.images, np.float32)[index][..., None] / np.float32(16.0)
  parts = _splits.example_split(images.shape[1], valid=valid, test=test)
  return FewShotSplits(*(jnp.asarray(images[:, p]) for p in parts))
