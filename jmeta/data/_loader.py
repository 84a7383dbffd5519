"""Prepared TFDS image-classification datasets as class-indexed device arrays."""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jmeta.data._tfds_compat import tfds

_log = logging.getLogger(__name__)


class ClassArrays(NamedTuple):
  """A class-indexed dataset.

  Attributes:
    images: shape ``(num_classes, examples_per_class, H, W, C)`` float32 in
      ``[0, 1]``; row ``i`` holds examples of class ``labels[i]``.
    labels: shape ``(num_classes,)`` int32, the dataset's label of each row.
  """

  images: jax.Array
  labels: jax.Array


def resize(images: np.ndarray, image_size: Optional[int | tuple[int, int]]) -> np.ndarray:
  """Resizes uint8 images with PIL's antialiased Lanczos filter.

  Args:
    images: shape ``(N, H, W, C)`` uint8, ``C`` in {1, 3, 4}.
    image_size: ``S`` or ``(height, width)``; ``None`` keeps the size.

  Returns:
    Shape ``(N, height, width, C)`` uint8.
  """
  if image_size is None:
    return images
  height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
  if images.shape[1:3] == (height, width):
    return images
  out = np.empty((images.shape[0], height, width, images.shape[3]), np.uint8)
  for i, image in enumerate(images):
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out[i] = np.asarray(pil.resize((width, height), Image.LANCZOS)).reshape(out.shape[1:])
  return out


def group_by_class(labels: np.ndarray, *, examples_per_class: Optional[int] = None,
                   order: Optional[np.ndarray] = None, what: str = "dataset"
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Indices that arrange examples by class.

  Classes are the distinct values of ``labels``, ascending. Ragged classes are
  cut to the smallest class's count unless ``examples_per_class`` is given.

  Args:
    labels: shape ``(N,)`` int.
    examples_per_class: examples to keep per class; ``None`` keeps the
      minimum over classes (logged when classes are ragged).
    order: shape ``(N,)`` permutation giving the order of examples within a
      class (default: their order in ``labels``).
    what: name of the data, for messages.

  Returns:
    ``(index, classes)``: ``index`` of shape ``(num_classes,
    examples_per_class)`` into the ``N`` examples, ``classes`` of shape
    ``(num_classes,)``, the label of each row.

  Raises:
    ValueError: ``examples_per_class`` exceeds the smallest class's count.
  """
  order = np.arange(len(labels)) if order is None else np.asarray(order)
  order = order[np.argsort(labels[order], kind="stable")]
  classes, counts = np.unique(labels, return_counts=True)
  smallest = int(counts.min())
  if examples_per_class is None:
    if smallest != counts.max():
      _log.info("%s: classes hold %d to %d examples; keeping the first %d of each",
                what, smallest, counts.max(), smallest)
    examples_per_class = smallest
  elif examples_per_class > smallest:
    raise ValueError(f"examples_per_class={examples_per_class} exceeds the {smallest} examples of "
                     f"class {classes[np.argmin(counts)]} in {what}")
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  return order[starts[:, None] + np.arange(examples_per_class)[None, :]], classes


def to_float(images: np.ndarray, *, invert: bool = False) -> jax.Array:
  """uint8 images to a device float32 array in ``[0, 1]`` (``1 - x`` if ``invert``)."""
  x = jnp.asarray(images, dtype=jnp.float32) / jnp.float32(255.0)
  return jnp.float32(1.0) - x if invert else x


def _cache_path(cache_dir: str, builder: Any, split: str, image_size: Any) -> str:
  config = builder.builder_config.name if builder.builder_config else "default"
  key = hashlib.sha1(repr((builder.name, config, str(builder.version), split,
                           image_size)).encode()).hexdigest()[:12]
  return os.path.join(cache_dir, f"{builder.name}-{config}-{builder.version}-{split}-{key}.npz")


def _read_all(source: Any, chunk: int = 1024) -> list[dict[str, Any]]:
  """All records of a data source, read in batches where the source allows it."""
  records = []
  for start in range(0, len(source), chunk):
    keys = list(range(start, min(start + chunk, len(source))))
    try:
      records.extend(source.__getitems__(keys))
    except TypeError:  # e.g. tfds.testing.mock_data's sources take single keys only
      records.extend(source[i] for i in keys)
  return records


def read_split(builder: Any, split: str, *, image_size: Optional[int | tuple[int, int]] = None,
               features: Sequence[str] = (),
               cache_dir: Optional[str] = None) -> dict[str, np.ndarray]:
  """Reads a prepared split into numpy arrays, through an ``.npz`` cache.

  Args:
    builder: a prepared TFDS builder (array_record) with supervised keys
      ``(image, label)``.
    split: split name, e.g. ``"train"``.
    image_size: resize to ``S`` or ``(H, W)``; ``None`` keeps the size.
    features: further scalar features to return.
    cache_dir: where the resized arrays are cached; ``None`` disables it.

  Returns:
    ``{"image": (N, H, W, C) uint8, "label": (N,) int64, **features}``.
  """
  path = _cache_path(cache_dir, builder, split, image_size) if cache_dir else None
  source = builder.as_data_source(split=split)
  if path and os.path.isfile(path):
    with np.load(path) as cached:
      if int(cached["num_examples"]) == len(source):
        return {k: cached[k] for k in cached.files if k != "num_examples"}
  image_key, label_key = builder.info.supervised_keys
  records = _read_all(source)
  out = {"image": resize(np.stack([np.asarray(r[image_key], np.uint8) for r in records]),
                         image_size),
         "label": np.asarray([r[label_key] for r in records], np.int64)}
  out.update({f: np.asarray([r[f] for r in records]) for f in features})
  if path:
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, num_examples=len(source), **out)
    os.replace(tmp, path)
  return out


def load_tfds_classes(
    name: str,
    *,
    split: str = "train",
    data_dir: Optional[str | os.PathLike[str]] = None,
    image_size: Optional[int | tuple[int, int]] = None,
    invert: bool = False,
    examples_per_class: Optional[int] = None,
    cache_dir: Optional[str | os.PathLike[str]] = None,
    download: bool = False,
) -> ClassArrays:
  """Loads a prepared TFDS image-classification split as a class-indexed array.

  The dataset must be prepared as array_record (``tfds build NAME
  --file_format=array_record``, or ``download=True``); it is read with
  ``tfds.data_source``, without TensorFlow. Classes with no example in the
  split are left out; ragged classes keep their first ``examples_per_class``
  examples (default: the smallest class's count).

  Args:
    name: a TFDS name, e.g. ``"mnist"``, ``"cifar100"``, ``"jmeta_omniglot"``.
    split: the TFDS split.
    data_dir: the TFDS data directory (TFDS's default if ``None``).
    image_size: resize (antialiased) to ``S`` or ``(H, W)``.
    invert: map ``x`` to ``1 - x`` (e.g. ink = 1 for Omniglot).
    examples_per_class: examples kept per class.
    cache_dir: cache the resized arrays there as ``.npz``; ``None``: no cache.
    download: prepare the dataset first if needed (may need network and, for
      most stock builders, TensorFlow).

  Returns:
    :class:`ClassArrays`: ``images`` ``(num_classes, examples_per_class, H, W,
    C)`` float32, ``labels`` ``(num_classes,)`` int32.

  Raises:
    ValueError: unknown dataset name, unknown split, or ``examples_per_class``
      too large.
    FileNotFoundError: the dataset is not prepared in ``data_dir``.
  """
  data_dir = os.fspath(data_dir) if data_dir is not None else None
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError as e:
    first_line = str(e).splitlines()[0] if str(e) else ""
    raise ValueError(f"unknown dataset name={name!r}: not a registered TFDS dataset "
                     f"({first_line})") from e
  if download:
    builder.download_and_prepare(file_format="array_record")
  try:
    builder.as_data_source(split=split)
  except (KeyError, ValueError, FileNotFoundError, AssertionError) as e:
    if not builder.info.splits:
      raise FileNotFoundError(
          f"dataset {name!r} is not prepared in data_dir={data_dir or builder.data_dir}; run "
          f"`tfds build {name} --file_format=array_record` or pass download=True") from e
    raise ValueError(f"dataset {name!r} has no split={split!r}; it has "
                     f"{sorted(builder.info.splits)} ({e})") from e
  data = read_split(builder, split, image_size=image_size,
                    cache_dir=os.fspath(cache_dir) if cache_dir else None)
  index, classes = group_by_class(data["label"], examples_per_class=examples_per_class,
                                  what=f"{name} split {split!r}")
  return ClassArrays(to_float(data["image"][index], invert=invert),
                     jnp.asarray(classes, dtype=jnp.int32))
