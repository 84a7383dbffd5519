"""Class splits of Omniglot (Lake; Vinyals) and rotated classes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ClassSplit(NamedTuple):
  """Disjoint sets of class indices (rows of a class-indexed array).

  Attributes:
    train: shape ``(n_train,)`` int64, sorted.
    valid: shape ``(n_valid,)`` int64, sorted.
    test: shape ``(n_test,)`` int64, sorted.
  """

  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray


def vinyals_split(num_classes: int, *, num_train: int = 1200, num_valid: int = 100,
                  seed: int = 0) -> ClassSplit:
  """The split of Vinyals et al. (2016): 1,200 characters for training, the rest for test.

  A seeded permutation of all characters is cut as in Finn et al. (2017): its
  first ``num_train - num_valid`` characters train, the next ``num_valid``
  validate (so train + valid are the 1,200 training characters) and the
  remaining ``num_classes - num_train`` (423 for Omniglot) test. Pass
  ``num_valid=0`` for all 1,200 (4,800 with rotations) in ``train``.

  Args:
    num_classes: number of characters (1,623 for Omniglot).
    num_train: characters for meta-training, validation included.
    num_valid: of those, characters held out for validation.
    seed: seed of the permutation (``numpy.random.default_rng``).

  Returns:
    A :class:`ClassSplit` of character indices.

  Raises:
    ValueError: ``num_valid > num_train`` or ``num_train >= num_classes``.
  """
  if not 0 <= num_valid <= num_train < num_classes:
    raise ValueError(f"need 0 <= num_valid <= num_train < num_classes, got num_valid={num_valid}, "
                     f"num_train={num_train}, num_classes={num_classes}")
  perm = np.random.default_rng(seed).permutation(num_classes)
  cut = num_train - num_valid
  return ClassSplit(np.sort(perm[:cut]), np.sort(perm[cut:num_train]), np.sort(perm[num_train:]))


def lake_split(background: np.ndarray, alphabet: np.ndarray, *, num_valid_alphabets: int = 5,
               seed: int = 0) -> ClassSplit:
  """The split of Lake et al. (2015): background alphabets train, evaluation alphabets test.

  Validation holds out ``num_valid_alphabets`` whole background alphabets,
  drawn with ``seed``, so that, like test, it shares no alphabet with train.

  Args:
    background: shape ``(num_classes,)`` bool, whether each character is in
      ``images_background``.
    alphabet: shape ``(num_classes,)`` int, each character's alphabet.
    num_valid_alphabets: background alphabets held out for validation.
    seed: seed of the choice (``numpy.random.default_rng``).

  Returns:
    A :class:`ClassSplit` of character indices.

  Raises:
    ValueError: not fewer than ``num_valid_alphabets`` background alphabets.
  """
  background = np.asarray(background, bool)
  alphabet = np.asarray(alphabet)
  pool = np.unique(alphabet[background])
  if not 0 <= num_valid_alphabets < len(pool):
    raise ValueError(f"num_valid_alphabets={num_valid_alphabets} must be in [0, {len(pool)}): "
                     f"there are {len(pool)} background alphabets")
  held_out = np.random.default_rng(seed).choice(pool, num_valid_alphabets, replace=False)
  valid = background & np.isin(alphabet, held_out)
  return ClassSplit(np.flatnonzero(background & ~valid), np.flatnonzero(valid),
                    np.flatnonzero(~background))


def add_rotations(images: np.ndarray) -> np.ndarray:
  """Adds the 90, 180 and 270 degree rotations of every class as new classes.

  As in Santoro et al. (2016) and Vinyals et al. (2016): class ``i`` rotated
  by ``k * 90`` degrees (counter-clockwise) becomes class ``k * C + i``.

  Args:
    images: shape ``(C, E, H, W, ch)`` with ``H == W``.

  Returns:
    Shape ``(4 * C, E, H, W, ch)``.

  Raises:
    ValueError: ``images`` is not 5-d with square images.
  """
  if np.ndim(images) != 5 or images.shape[2] != images.shape[3]:
    raise ValueError(f"rotations need images of shape (C, E, H, W, ch) with H == W, got shape "
                     f"{np.shape(images)}")
  return np.concatenate([np.rot90(images, k, axes=(2, 3)) for k in range(4)])


def example_split(examples_per_class: int, *, valid: float = 0.2, test: float = 0.2
                  ) -> tuple[slice, slice, slice]:
  """Slices that cut every class's examples into train, validation and test parts.

  For datasets with few classes (digits, MNIST), where held-out *classes* would
  leave too few tasks, meta-test tasks are new pairings of the classes on
  held-out *images*. Each part keeps the examples in their order (the first
  ones train).

  Args:
    examples_per_class: examples of each class.
    valid: fraction of each class's examples for validation.
    test: fraction for test (``0`` when the dataset has its own test split).

  Returns:
    ``(train, valid, test)`` slices of the example axis, each non-empty where
    its fraction is positive.

  Raises:
    ValueError: fractions outside ``[0, 1)`` or leaving no training examples.
  """
  if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
    raise ValueError(f"valid and test must be fractions in [0, 1) summing below 1; got"
                     f" valid={valid}, test={test}")
  n_valid = int(round(valid * examples_per_class))
  n_test = int(round(test * examples_per_class))
  n_train = examples_per_class - n_valid - n_test
  if n_train < 1 or (valid > 0 and n_valid < 1) or (test > 0 and n_test < 1):
    raise ValueError(f"{examples_per_class} examples per class cannot be split into train,"
                     f" valid={valid}, test={test}")
  return (slice(0, n_train), slice(n_train, n_train + n_valid),
          slice(n_train + n_valid, examples_per_class))
