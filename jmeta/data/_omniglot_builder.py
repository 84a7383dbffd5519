"""A TFDS builder for Omniglot that prepares array_record files without TensorFlow.

TFDS's stock ``omniglot`` builder extracts its archives with ``tf.io.gfile``
and so needs TensorFlow. This one reads the zips with :mod:`zipfile`, decodes
and re-encodes the PNGs with PIL, and is meant to be written as array_record
(``file_format="array_record"``) and read back with ``tfds.data_source``, which
needs neither TensorFlow nor ``tf.data``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
from typing import Mapping, Optional

import numpy as np
from PIL import Image

from jmeta.data import _omniglot_archive as archive
from jmeta.data._tfds_compat import tfds

NAME = "jmeta_omniglot"

_CITATION = """\
@article{lake2015human,
  title={Human-level concept learning through probabilistic program induction},
  author={Lake, Brenden M and Salakhutdinov, Ruslan and Tenenbaum, Joshua B},
  journal={Science}, volume={350}, number={6266}, pages={1332--1338}, year={2015}
}"""


@dataclasses.dataclass(eq=False)
class OmniglotConfig(tfds.core.BuilderConfig):
  """Which archives to accept.

  Attributes:
    expected_counts: for each archive root (``"images_background"``,
      ``"images_evaluation"``), the :class:`ArchiveCounts` it must match; a
      root mapped to ``None`` is checked for layout only. The default config
      ``"full"`` expects the real dataset. Small archives of the same layout
      (tests) need a config of another name, which gets its own directory.
  """

  expected_counts: Mapping[str, Optional[archive.ArchiveCounts]] = dataclasses.field(
      default_factory=lambda: dict(archive.OMNIGLOT_COUNTS))


class OmniglotBuilder(tfds.core.GeneratorBasedBuilder):
  """Omniglot (Lake et al., 2015): 1,623 characters of 50 alphabets, 20 drawers.

  Splits: ``"train"`` is ``images_background`` (30 alphabets, 964 characters,
  19,280 images), ``"test"`` is ``images_evaluation`` (20 alphabets, 659
  characters, 13,180 images), as in TFDS's ``omniglot``: together the Lake
  split.

  Features: ``image`` (105, 105, 1) uint8, background 255 and strokes 0;
  ``label`` = ``int(ID) - 1`` in 0..1622; ``alphabet`` (class label over the 50
  alphabet names); ``alphabet_char_id`` (0-based character index within its
  alphabet); ``drawer`` (1..20).

  The archives are taken from ``manual_dir`` (TFDS's convention; by default
  ``<data_dir>/downloads/manual``) when there, otherwise downloaded by TFDS's
  download manager if the builder was made with ``allow_download=True``.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "TensorFlow-free preparation; grayscale images; drawer feature."}
  BUILDER_CONFIGS = [OmniglotConfig(name="full", description="The whole Omniglot dataset.")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place images_background.zip and images_evaluation.zip (from "
      f"{archive.BASE_URL}) in the manual directory.")
  name = NAME

  def __init__(self, *, allow_download: bool = False, **kwargs):
    """Makes the builder.

    Args:
      allow_download: whether archives missing from ``manual_dir`` may be
        downloaded. When ``False`` they raise ``FileNotFoundError``.
      **kwargs: as for ``tfds.core.GeneratorBasedBuilder`` (``data_dir``,
        ``config``, ``file_format``...).
    """
    self._allow_download = allow_download
    super().__init__(**kwargs)
    self._original_state["allow_download"] = allow_download  # for pickling

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="Omniglot handwritten characters, prepared without TensorFlow.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(archive.IMAGE_SIZE, archive.IMAGE_SIZE, 1),
                                         encoding_format="png"),
            "label": tfds.features.ClassLabel(),
            "alphabet": tfds.features.ClassLabel(),
            "alphabet_char_id": np.int64,
            "drawer": np.int64,
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/brendenlake/omniglot",
        citation=_CITATION,
    )

  def _archive_paths(self, dl_manager) -> dict[str, str]:
    roots = list(self.builder_config.expected_counts)
    try:
      manual_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # missing or empty manual directory
      manual_dir = os.fspath(dl_manager._manual_dir)  # pylint: disable=protected-access
    paths = {r: os.path.join(manual_dir, r + ".zip") for r in roots}
    missing = [r for r, p in paths.items() if not os.path.isfile(p)]
    if missing and not self._allow_download:
      raise FileNotFoundError(
          f"Omniglot archive(s) {', '.join(r + '.zip' for r in missing)} not found in "
          f"manual_dir {manual_dir}; expected {', '.join(r + '.zip' for r in roots)} there "
          f"(from {archive.BASE_URL}), or pass download=True (allow_download=True for "
          "OmniglotBuilder) to fetch them.")
    if missing:
      downloaded = dl_manager.download({r: archive.URLS[r] for r in missing})
      paths.update({r: os.fspath(p) for r, p in downloaded.items()})
    return paths

  def _split_generators(self, dl_manager):
    paths = self._archive_paths(dl_manager)
    counts = self.builder_config.expected_counts
    entries = {r: archive.scan_archive(p, r, counts[r]) for r, p in paths.items()}

    names: dict[int, str] = {}
    for root, es in entries.items():
      for e in es:
        name = f"{e.alphabet}/{e.character}"
        if names.setdefault(e.label, name) != name:
          raise archive.OmniglotArchiveError(
              f"Omniglot archive {paths[root]}: character ID {e.label + 1} is used by both "
              f"{names[e.label]} and {name}")
    if sorted(names) != list(range(len(names))):
      raise archive.OmniglotArchiveError(
          f"Omniglot archives {', '.join(paths.values())}: character IDs are not 1..{len(names)}")
    self.info.features["label"].names = [names[i] for i in range(len(names))]
    alphabets = {e.alphabet for es in entries.values() for e in es}
    self.info.features["alphabet"].names = sorted(alphabets)

    split_of = {archive.BACKGROUND: "train", archive.EVALUATION: "test"}
    return {split_of.get(r, r): self._generate_examples(paths[r], entries[r]) for r in paths}

  def _generate_examples(self, path: str, entries: list[archive.Entry]):
    for entry, image in archive.read_images(path, entries):
      buffer = io.BytesIO()
      Image.fromarray(image, mode="L").save(buffer, format="png")
      yield entry.member, {
          "image": buffer.getvalue(),
          "label": entry.label,
          "alphabet": entry.alphabet,
          "alphabet_char_id": entry.alphabet_char_id,
          "drawer": entry.drawer,
      }


def prepare_omniglot(
    data_dir: str | os.PathLike[str],
    *,
    manual_dir: Optional[str | os.PathLike[str]] = None,
    download: bool = False,
    config: Optional[OmniglotConfig] = None,
) -> OmniglotBuilder:
  """Validates the Omniglot archives and writes them as array_record (no TensorFlow).

  Preparing twice is a no-op: TFDS reuses ``<data_dir>/jmeta_omniglot/<config>/1.0.0``.

  Args:
    data_dir: where the prepared dataset is written (created if needed).
    manual_dir: folder holding ``images_background.zip`` and
      ``images_evaluation.zip``; defaults to ``<data_dir>/downloads/manual``.
    download: download archives missing from ``manual_dir`` (needs network).
    config: which counts to expect; defaults to the real dataset's.

  Returns:
    The prepared builder; ``builder.as_data_source()`` gives
    ``{"train": ..., "test": ...}`` random-access sources of examples.

  Raises:
    FileNotFoundError: an archive is missing and ``download`` is ``False``.
    OmniglotArchiveError: an archive is corrupt, truncated or mis-laid.
  """
  data_dir = os.fspath(data_dir)
  builder = OmniglotBuilder(data_dir=data_dir, config=config, allow_download=download,
                            file_format="array_record")
  if builder.is_prepared():
    return builder
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir) if manual_dir is not None else None)
  # What this call may create; on failure it is removed again (deepest first), so a failed
  # preparation leaves the data directory as it was.
  created = [p for p in (os.path.join(data_dir, "downloads", "extracted"),
                         os.path.join(data_dir, "downloads"),
                         os.path.join(data_dir, builder.name, builder.builder_config.name),
                         os.path.join(data_dir, builder.name)) if not os.path.exists(p)]
  chatter = io.StringIO()
  try:
    # TFDS announces "Downloading and preparing dataset" and draws progress bars even when
    # nothing is downloaded: keep that unless a download was asked for.
    if download:
      builder.download_and_prepare(download_config=download_config)
    else:
      with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
        builder.download_and_prepare(download_config=download_config)
  except BaseException:
    for path in created:
      shutil.rmtree(path, ignore_errors=True)
    raise
  return builder
