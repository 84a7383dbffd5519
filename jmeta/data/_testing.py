"""Small synthetic Omniglot archives of the real layout, for tests and examples."""

from __future__ import annotations

import io
import os
import zipfile
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from jmeta.data import _omniglot_archive as archive


def fake_png_array(seed: int, size: int = archive.IMAGE_SIZE) -> np.ndarray:
  """The pixels of :func:`fake_png`: shape ``(size, size)`` uint8, 255 background, 0 ink (~10%)."""
  return np.where(np.random.default_rng(seed).random((size, size)) > 0.1, 255, 0).astype(np.uint8)


def fake_png(seed: int, size: int = archive.IMAGE_SIZE) -> bytes:
  """A random 1-bit PNG (mostly background ``True``, as Omniglot's).

  Args:
    seed: numpy seed of the pixels.
    size: width and height.

  Returns:
    The PNG file's bytes.
  """
  pixels = fake_png_array(seed, size) > 0
  buffer = io.BytesIO()
  Image.fromarray(pixels).convert("1").save(buffer, format="png")
  return buffer.getvalue()


def write_fake_omniglot(
    directory: str | os.PathLike[str],
    characters: Mapping[str, Sequence[int]] = None,
    *,
    drawers: int = 3,
) -> dict[str, archive.ArchiveCounts]:
  """Writes ``images_background.zip`` and ``images_evaluation.zip`` of the real layout.

  Character IDs run 1, 2, ... over the background alphabets, then over the
  evaluation ones (as in the real dataset), so ``label = ID - 1`` is dense.

  Args:
    directory: where the zips go (created if needed).
    characters: for each root, the number of characters of each of its
      alphabets; default: background 2 alphabets of 3 and 2 characters,
      evaluation 1 alphabet of 2 characters.
    drawers: images per character.

  Returns:
    The counts of each archive, ready for ``OmniglotConfig(expected_counts=...)``.
  """
  if characters is None:
    characters = {archive.BACKGROUND: [3, 2], archive.EVALUATION: [2]}
  os.makedirs(directory, exist_ok=True)
  counts, next_id = {}, 1
  for root, per_alphabet in characters.items():
    with zipfile.ZipFile(os.path.join(directory, root + ".zip"), "w") as zf:
      zf.writestr(root + "/", b"")
      for a, num_chars in enumerate(per_alphabet):
        for c in range(num_chars):
          folder = f"{root}/Alphabet_{root[7]}{a}/character{c + 1:02d}"
          for d in range(drawers):
            zf.writestr(f"{folder}/{next_id:04d}_{d + 1:02d}.png", fake_png(next_id * 100 + d))
          next_id += 1
    counts[root] = archive.ArchiveCounts(sum(per_alphabet) * drawers, sum(per_alphabet),
                                         len(per_alphabet))
  return counts
