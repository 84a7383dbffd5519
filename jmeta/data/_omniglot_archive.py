"""Reading and validating the Omniglot zip archives (no TensorFlow needed).

The archives of Lake et al. (2015) hold
``<root>/<Alphabet>/<characterNN>/<ID>_<drawer>.png`` where ``<root>`` is
``images_background`` or ``images_evaluation``, ``<ID>`` is the 1-based
character index over the whole dataset (``label = int(ID) - 1``, as in TFDS) and
``<drawer>`` is ``01``..``20``. A copy is accepted when its layout and counts
are right, whatever the archive's own hash (repacked copies differ byte-wise).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import Iterator, Mapping, NamedTuple, Optional

import numpy as np
from PIL import Image

BACKGROUND = "images_background"
EVALUATION = "images_evaluation"
IMAGE_SIZE = 105
BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
URLS = {r: BASE_URL + r + ".zip" for r in (BACKGROUND, EVALUATION)}

_CHARACTER = re.compile(r"character(\d+)$")
_IMAGE = re.compile(r"(\d+)_(\d+)\.png$")


class OmniglotArchiveError(ValueError):
  """An Omniglot archive is corrupt, truncated or laid out unexpectedly."""


class ArchiveCounts(NamedTuple):
  """What one Omniglot archive must hold.

  Attributes:
    images: number of PNG files.
    characters: number of ``characterNN`` folders (classes).
    alphabets: number of alphabet folders.
  """

  images: int
  characters: int
  alphabets: int


OMNIGLOT_COUNTS: Mapping[str, ArchiveCounts] = {
    BACKGROUND: ArchiveCounts(images=19_280, characters=964, alphabets=30),
    EVALUATION: ArchiveCounts(images=13_180, characters=659, alphabets=20),
}


class Entry(NamedTuple):
  """One image of an archive: where it is and what it shows."""

  member: str  # path inside the zip
  alphabet: str
  character: str  # folder name, e.g. "character07"
  alphabet_char_id: int  # 0-based index within the alphabet (NN - 1)
  label: int  # int(ID) - 1, unique over both archives
  drawer: int  # 1..20


_LAYOUT = "<root>/<Alphabet>/<characterNN>/<ID>_<drawer>.png"


def _error(path: str, message: str) -> OmniglotArchiveError:
  return OmniglotArchiveError(f"Omniglot archive {path}: {message}")


def scan_archive(
    path: str | os.PathLike[str],
    root: str,
    expected: Optional[ArchiveCounts] = None,
) -> list[Entry]:
  """Lists and validates the images of one Omniglot archive.

  Args:
    path: the zip file (``images_background.zip`` or ``images_evaluation.zip``).
    root: the top folder inside the zip, ``"images_background"`` or
      ``"images_evaluation"``.
    expected: counts the archive must match exactly; ``None`` checks the layout
      only.

  Returns:
    The entries, sorted by member path.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    OmniglotArchiveError: the file is not a zip, an entry does not follow
      ``<root>/<Alphabet>/<characterNN>/<ID>_<drawer>.png``, one character
      folder mixes IDs, two folders share an ID, or the counts differ from
      ``expected``.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Omniglot archive not found: {path} (expected the zip of {root}/)")
  try:
    with zipfile.ZipFile(path) as zf:
      names = sorted(zf.namelist())
  except (zipfile.BadZipFile, OSError) as e:
    raise _error(path, f"not a readable zip file ({e}); expected the Omniglot {root}.zip") from e

  entries = []
  id_of_character: dict[tuple[str, str], int] = {}
  for name in names:
    parts = name.split("/")
    if name.endswith("/") or parts[0] == "__MACOSX" or parts[-1].startswith("."):
      continue  # folders and macOS metadata
    if len(parts) != 4 or parts[0] != root:
      raise _error(path, f"unexpected entry {name!r}; expected the layout {_LAYOUT} "
                   f"with <root> = {root}")
    _, alphabet, character, filename = parts
    char_match, image_match = _CHARACTER.match(character), _IMAGE.match(filename)
    if not char_match or not image_match:
      raise _error(path, f"unexpected entry {name!r}; expected the layout {_LAYOUT}")
    label = int(image_match.group(1)) - 1
    if id_of_character.setdefault((alphabet, character), label) != label:
      raise _error(path, f"folder {root}/{alphabet}/{character} mixes character IDs "
                   f"{id_of_character[(alphabet, character)] + 1} and {label + 1}")
    entries.append(Entry(name, alphabet, character, int(char_match.group(1)) - 1, label,
                         int(image_match.group(2))))

  labels = list(id_of_character.values())
  if len(set(labels)) != len(labels):
    raise _error(path, "two character folders share one character ID")
  found = ArchiveCounts(len(entries), len(id_of_character), len({a for a, _ in id_of_character}))
  if not entries:
    raise _error(path, f"holds no images; expected {_LAYOUT} with <root> = {root}")
  if expected is not None and found != expected:
    raise _error(
        path,
        f"found {found.images} images of {found.characters} characters in {found.alphabets} "
        f"alphabets; expected {expected.images} images of {expected.characters} characters in "
        f"{expected.alphabets} alphabets (truncated archive, or not the Omniglot {root} set?)")
  return entries


def read_images(path: str | os.PathLike[str],
                entries: list[Entry]) -> Iterator[tuple[Entry, np.ndarray]]:
  """Decodes the images of an archive as grayscale arrays.

  Args:
    path: the zip file.
    entries: entries of that file, from :func:`scan_archive`.

  Yields:
    ``(entry, image)`` pairs, ``image`` of shape ``(105, 105)`` uint8 with
    background 255 and strokes 0 (the PNGs are 1-bit; ``True`` becomes 255).

  Raises:
    OmniglotArchiveError: a member fails its CRC check, is not a PNG, or is not
      105x105.
  """
  path = os.fspath(path)
  with zipfile.ZipFile(path) as zf:
    for entry in entries:
      try:
        with Image.open(io.BytesIO(zf.read(entry.member))) as im:
          im.load()
          image = np.asarray(im.convert("L"), dtype=np.uint8)
      except Exception as e:  # zipfile.BadZipFile, PIL.UnidentifiedImageError, OSError...
        raise _error(path, f"cannot read image {entry.member!r} ({type(e).__name__}: {e})") from e
      if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise _error(path, f"image {entry.member!r} is {image.shape[1]}x{image.shape[0]}; "
                     f"expected {IMAGE_SIZE}x{IMAGE_SIZE}")
      yield entry, image
