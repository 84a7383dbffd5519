"""MNIST through TFDS (prepared locally as array_record) for few-shot tasks."""

from __future__ import annotations

import os
from typing import Optional

from jmeta.data import _loader
from jmeta.data import _splits
from jmeta.data._omniglot import FewShotSplits


def load_mnist(data_dir: Optional[str | os.PathLike[str]] = None, *, valid: float = 0.2,
               cache_dir: Optional[str | os.PathLike[str]] = None) -> FewShotSplits:
  """MNIST's ten digits as class-indexed arrays, from a locally prepared TFDS ``mnist``.

  The TFDS ``train`` split is cut per digit into meta-train and validation
  images (:func:`example_split`); the TFDS ``test`` split is the meta-test
  split. Ragged digits keep the smallest digit's count (see
  :func:`load_tfds_classes`).

  Args:
    data_dir: the TFDS data directory holding ``mnist`` prepared as
      array_record (``tfds build mnist --file_format=array_record``).
    valid: fraction of each digit's training images for validation.
    cache_dir: where the decoded arrays are cached (``None``: no cache).

  Returns:
    :class:`FewShotSplits` of float32 arrays of shape ``(10, n, 28, 28, 1)``.

  Raises:
    FileNotFoundError: ``mnist`` is not prepared in ``data_dir``.
  """
  train = _loader.load_tfds_classes("mnist", split="train", data_dir=data_dir,
                                    cache_dir=cache_dir).images
  test = _loader.load_tfds_classes("mnist", split="test", data_dir=data_dir,
                                   cache_dir=cache_dir).images
  parts = _splits.example_split(train.shape[1], valid=valid, test=0.0)
  return FewShotSplits(train[:, parts[0]], train[:, parts[1]], test)
