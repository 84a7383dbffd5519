"""Opt-in integration test on the real Omniglot archives.

Runs only with ``JMETA_INTEGRATION=1`` and the archives present at
``<repo>/../shared/data/omniglot`` (or ``$JMETA_OMNIGLOT_DIR``). Takes a few
minutes on two CPU cores.
"""

import os
import pathlib
import sys

import numpy as np
import pytest

import jmeta.data as jd

OMNIGLOT_DIR = pathlib.Path(os.environ.get(
    "JMETA_OMNIGLOT_DIR",
    pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"))


def _skip_reason():
  if os.environ.get("JMETA_INTEGRATION") != "1":
    return "integration test: set JMETA_INTEGRATION=1 to run it"
  if not (OMNIGLOT_DIR / "images_background.zip").is_file():
    return f"integration test: no Omniglot archives in {OMNIGLOT_DIR} (set JMETA_OMNIGLOT_DIR)"
  return None


@pytest.mark.integration
@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_real_omniglot(tmp_path):
  builder = jd.prepare_omniglot(tmp_path, manual_dir=OMNIGLOT_DIR)
  sources = builder.as_data_source()
  assert len(sources["train"]) == 19_280 and len(sources["test"]) == 13_180
  alphabet_names = builder.info.features["alphabet"].names
  assert len(alphabet_names) == 50 and len(builder.info.features["label"].names) == 1623

  splits = jd.load_omniglot(tmp_path, manual_dir=OMNIGLOT_DIR, split="lake", num_valid=0)
  assert splits.train.shape == (964, 20, 28, 28, 1)
  assert splits.valid.shape == (0, 20, 28, 28, 1)
  assert splits.test.shape == (659, 20, 28, 28, 1)
  cache = list((tmp_path / "jmeta_cache").glob("*.npz"))
  assert len(cache) == 2
  for path in cache:
    with np.load(path) as data:
      n_alphabets = len(np.unique(data["alphabet"]))
      n_chars = len(np.unique(data["label"]))
      if "-train-" in path.name:
        assert (len(data["label"]), n_chars, n_alphabets) == (19_280, 964, 30)
      else:
        assert (len(data["label"]), n_chars, n_alphabets) == (13_180, 659, 20)
        assert data["label"].min() == 964 and data["label"].max() == 1622
  # Ink is 1 and sparse: about 5-25% of pixels after resizing.
  assert 0.03 < float(splits.train.mean()) < 0.3

  vinyals = jd.load_omniglot(tmp_path, manual_dir=OMNIGLOT_DIR, rotations=True, num_valid=0)
  assert vinyals.train.shape == (4_800, 20, 28, 28, 1)
  assert vinyals.test.shape == (4 * 423, 20, 28, 28, 1)
  assert "tensorflow" not in sys.modules
