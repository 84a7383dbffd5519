"""Omniglot as class-indexed device arrays with the standard few-shot splits."""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

import jax
import numpy as np

from jmeta.data import _loader
from jmeta.data import _omniglot_builder
from jmeta.data import _splits


class FewShotSplits(NamedTuple):
  """Meta-train, meta-validation and meta-test classes.

  Attributes:
    train: shape ``(n_train, E, H, W, C)`` float32.
    valid: shape ``(n_valid, E, H, W, C)`` float32.
    test: shape ``(n_test, E, H, W, C)`` float32.
  """

  train: jax.Array
  valid: jax.Array
  test: jax.Array


def omniglot_class_info(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Per-character metadata from the examples of both splits.

  Args:
    data: ``{"label", "alphabet", "background"}`` arrays of shape ``(N,)``.

  Returns:
    ``{"background", "alphabet"}`` of shape ``(num_classes,)``, indexed by label.
  """
  num_classes = int(data["label"].max()) + 1
  info = {"background": np.zeros(num_classes, bool), "alphabet": np.zeros(num_classes, np.int64)}
  info["background"][data["label"]] = data["background"]
  info["alphabet"][data["label"]] = data["alphabet"]
  return info


def load_omniglot(
    data_dir: str | os.PathLike[str],
    *,
    split: str | _splits.ClassSplit = "vinyals",
    image_size: Optional[int] = 28,
    rotations: bool = False,
    num_valid: Optional[int] = None,
    seed: int = 0,
    manual_dir: Optional[str | os.PathLike[str]] = None,
    download: bool = False,
    config: Optional[_omniglot_builder.OmniglotConfig] = None,
    cache: bool = True,
) -> FewShotSplits:
  """Prepares (once) and loads Omniglot for few-shot classification.

  Images are resized from 105x105 with PIL's antialiased Lanczos filter and
  inverted so that ink is 1.0 and background 0.0. Rows of each split are
  characters in ascending label order (``label = ID - 1``), each holding its 20
  drawers' images in drawer order. The resized images are cached in
  ``<data_dir>/jmeta_cache`` so later loads skip PNG decoding.

  Args:
    data_dir: TFDS data directory; the dataset is prepared there (array_record,
      no TensorFlow) if it is not yet.
    split: ``"vinyals"`` (see :func:`vinyals_split`: 1,100 train, 100 valid,
      423 test characters), ``"lake"`` (see :func:`lake_split`: background
      alphabets train, ``num_valid`` of them validate, evaluation alphabets
      test), or an explicit :class:`ClassSplit` of labels.
    image_size: side of the resized images; ``None`` keeps 105.
    rotations: add the 90/180/270-degree rotations of every character as new
      classes in every split (Vinyals et al., 2016; 4,800 train classes for
      the Vinyals split with ``num_valid=0``).
    num_valid: characters (``"vinyals"``, default 100) or background alphabets
      (``"lake"``, default 5) held out for validation.
    seed: seed of the validation (and Vinyals) choice.
    manual_dir: folder holding ``images_background.zip`` and
      ``images_evaluation.zip`` (default ``<data_dir>/downloads/manual``).
    download: download missing archives.
    config: expected archive counts (default: the real dataset's).
    cache: read and write the ``.npz`` cache.

  Returns:
    :class:`FewShotSplits` of float32 device arrays of shape ``(classes, 20,
    image_size, image_size, 1)``.

  Raises:
    FileNotFoundError: ``data_dir`` does not exist, or the dataset is not
      prepared and an archive is missing.
    OmniglotArchiveError: an archive is corrupt, truncated or mis-laid.
    ValueError: unknown ``split`` name or a ``num_valid`` that does not fit.
  """
  data_dir = os.fspath(data_dir)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"data_dir {data_dir} does not exist; create it (the dataset is "
                            "prepared there) or pass an existing TFDS data directory")
  if isinstance(split, str) and split not in ("vinyals", "lake"):
    raise ValueError(f"split={split!r}: expected 'vinyals', 'lake' or a ClassSplit")
  builder = _omniglot_builder.prepare_omniglot(data_dir, manual_dir=manual_dir,
                                               download=download, config=config)
  cache_dir = os.path.join(data_dir, "jmeta_cache") if cache else None
  parts = [_loader.read_split(builder, s, image_size=image_size,
                              features=("alphabet", "drawer"), cache_dir=cache_dir)
           for s in ("train", "test")]
  data = {k: np.concatenate([p[k] for p in parts]) for k in ("image", "label", "alphabet",
                                                              "drawer")}
  data["background"] = np.concatenate([np.ones(len(parts[0]["label"]), bool),
                                       np.zeros(len(parts[1]["label"]), bool)])
  index, labels = _loader.group_by_class(data["label"], order=np.argsort(data["drawer"],
                                                                         kind="stable"),
                                         what=f"Omniglot in {data_dir}")
  images = data["image"][index]  # (classes, drawers, H, W, 1), row i has label labels[i]
  if not np.array_equal(labels, np.arange(len(labels))):
    raise ValueError(f"Omniglot in {data_dir}: labels are not 0..{len(labels) - 1}")

  if isinstance(split, str):
    info = omniglot_class_info(data)
    if split == "vinyals":
      split = _splits.vinyals_split(len(labels), num_valid=100 if num_valid is None else num_valid,
                                    seed=seed)
    else:
      split = _splits.lake_split(info["background"], info["alphabet"],
                                 num_valid_alphabets=5 if num_valid is None else num_valid,
                                 seed=seed)

  def part(rows: np.ndarray) -> jax.Array:
    x = images[np.asarray(rows, np.int64)]
    return _loader.to_float(_splits.add_rotations(x) if rotations else x, invert=True)

  return FewShotSplits(part(split.train), part(split.valid), part(split.test))
