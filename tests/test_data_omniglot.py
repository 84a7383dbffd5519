"""Tests of the TensorFlow-free Omniglot builder and loader on small generated zips."""

import importlib.util
import os
import sys
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

import jmeta.data as jd

BG, EV = "images_background", "images_evaluation"
# 2 background alphabets (3 and 2 characters), 1 evaluation alphabet (2), 3 drawers.
CHARS = {BG: [3, 2], EV: [2]}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("omniglot")
  counts = jd.write_fake_omniglot(root / "manual", CHARS, drawers=3)
  config = jd.OmniglotConfig(name="small", expected_counts=counts)
  builder = jd.prepare_omniglot(root / "data", manual_dir=root / "manual", config=config)
  return root, config, builder


def _config(counts=None):
  return jd.OmniglotConfig(name="small", expected_counts=counts or {
      BG: jd.ArchiveCounts(15, 5, 2), EV: jd.ArchiveCounts(6, 2, 1)})


def test_no_tensorflow(prepared):
  del prepared
  assert "tensorflow" not in sys.modules
  assert importlib.util.find_spec("tensorflow") is None


def test_counts_labels_alphabets(prepared):
  _, _, builder = prepared
  assert builder.info.file_format.value == "array_record"
  assert builder.data_path.name == "1.0.0" and builder.data_path.parent.name == "small"
  sources = builder.as_data_source()
  assert {k: len(v) for k, v in sources.items()} == {"train": 15, "test": 6}
  records = {s: [sources[s][i] for i in range(len(sources[s]))] for s in sources}
  train_labels = sorted({int(r["label"]) for r in records["train"]})
  test_labels = sorted({int(r["label"]) for r in records["test"]})
  assert train_labels == [0, 1, 2, 3, 4] and test_labels == [5, 6]  # label = ID - 1
  names = builder.info.features["alphabet"].names
  assert names == ["Alphabet_b0", "Alphabet_b1", "Alphabet_e0"]
  assert {names[r["alphabet"]] for r in records["test"]} == {"Alphabet_e0"}
  # Character 3 of the background (label 3) is character01 of Alphabet_b1.
  r = next(r for r in records["train"] if r["label"] == 3)
  assert names[r["alphabet"]] == "Alphabet_b1" and r["alphabet_char_id"] == 0
  assert builder.info.features["label"].names[3] == "Alphabet_b1/character01"
  assert sorted(int(r["drawer"]) for r in records["train"] if r["label"] == 3) == [1, 2, 3]
  image = r["image"]
  assert image.shape == (105, 105, 1) and image.dtype == np.uint8
  assert set(np.unique(image).tolist()) == {0, 255}  # 1-bit PNG as 0/255 grayscale
  assert "tensorflow" not in sys.modules


def test_pixels_match_the_archive(prepared):
  _, _, builder = prepared
  source = builder.as_data_source(split="test")
  record = next(source[i] for i in range(len(source)) if source[i]["label"] == 6
                and source[i]["drawer"] == 2)
  expected = jd.fake_png_array(7 * 100 + 1)  # ID 7, drawer 02 (seed ID * 100 + index)
  np.testing.assert_array_equal(record["image"][..., 0], expected)


def test_preparing_again_reuses(prepared):
  root, config, builder = prepared
  mtime = os.path.getmtime(builder.data_path / "dataset_info.json")
  again = jd.prepare_omniglot(root / "data", manual_dir=root / "manual", config=config)
  assert os.path.getmtime(again.data_path / "dataset_info.json") == mtime


def test_load_omniglot_lake(prepared):
  root, config, _ = prepared
  splits = jd.load_omniglot(root / "data", manual_dir=root / "manual", config=config,
                            split="lake", num_valid=1, seed=0)
  shapes = [x.shape for x in splits]
  # Background alphabets b0 (3 chars) and b1 (2 chars): one is held out.
  assert sorted([shapes[0][0], shapes[1][0]]) == [2, 3] and shapes[2][0] == 2
  assert all(s[1:] == (3, 28, 28, 1) for s in shapes)
  assert splits.train.dtype == np.float32
  # Ink is 1: the fake PNGs have about 10% stroke pixels.
  assert 0.05 < float(splits.test.mean()) < 0.2
  assert float(splits.test.min()) >= 0.0 and float(splits.test.max()) <= 1.0
  assert (root / "data" / "jmeta_cache").is_dir()
  assert len(list((root / "data" / "jmeta_cache").glob("*.npz"))) == 2
  rotated = jd.load_omniglot(root / "data", manual_dir=root / "manual", config=config,
                             split="lake", num_valid=1, seed=0, rotations=True)
  assert rotated.train.shape[0] == 4 * shapes[0][0]
  np.testing.assert_allclose(rotated.train[shapes[0][0]], np.rot90(splits.train[0], 1, axes=(1, 2)))
  np.testing.assert_allclose(rotated.test[:2], splits.test)


def test_load_omniglot_explicit_split_and_cache_is_used(prepared):
  root, config, _ = prepared
  split = jd.ClassSplit(np.array([0, 1, 2]), np.array([3]), np.array([5, 6]))
  first = jd.load_omniglot(root / "data", manual_dir=root / "manual", config=config, split=split,
                           image_size=None)
  assert first.train.shape == (3, 3, 105, 105, 1) and first.valid.shape == (1, 3, 105, 105, 1)
  # Row 0 of test is label 5 (ID 6), drawer 1: the inverted fake PNG of seed 600.
  np.testing.assert_array_equal(first.test[0, 0, ..., 0],
                                1.0 - jd.fake_png_array(600).astype(np.float32) / 255)
  # The second load must come from the .npz cache, not the data source: invert
  # the cached images, and the second load sees them inverted.
  caches = sorted((root / "data" / "jmeta_cache").glob("*.npz"))
  assert caches
  for path in caches:
    with np.load(path) as cached:
      arrays = {k: cached[k] for k in cached.files}
    arrays["image"] = 255 - arrays["image"]
    np.savez(path, **arrays)
  second = jd.load_omniglot(root / "data", manual_dir=root / "manual", config=config, split=split,
                            image_size=None)
  np.testing.assert_allclose(second.test, 1.0 - first.test, atol=1e-6)


def test_missing_archive(tmp_path):
  jd.write_fake_omniglot(tmp_path / "manual", CHARS)
  os.remove(tmp_path / "manual" / f"{EV}.zip")
  with pytest.raises(FileNotFoundError, match=rf"{EV}\.zip not found in manual_dir .*manual"):
    jd.prepare_omniglot(tmp_path / "data", manual_dir=tmp_path / "manual", config=_config())


def test_no_archives_at_all(tmp_path):
  with pytest.raises(FileNotFoundError, match=rf"{BG}\.zip, {EV}\.zip not found in manual_dir"):
    jd.prepare_omniglot(tmp_path / "data", config=_config())


def test_no_data_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"data_dir .*nope does not exist"):
    jd.load_omniglot(tmp_path / "nope", config=_config())


def test_corrupt_zip(tmp_path):
  jd.write_fake_omniglot(tmp_path / "manual", CHARS)
  (tmp_path / "manual" / f"{BG}.zip").write_bytes(os.urandom(2000))
  with pytest.raises(jd.OmniglotArchiveError, match=rf"{BG}\.zip: not a readable zip file"):
    jd.prepare_omniglot(tmp_path / "data", manual_dir=tmp_path / "manual", config=_config())


def test_corrupt_image_inside_zip(tmp_path):
  jd.write_fake_omniglot(tmp_path / "manual", CHARS)
  path = tmp_path / "manual" / f"{EV}.zip"
  with zipfile.ZipFile(path, "a") as zf:
    zf.writestr(f"{EV}/Alphabet_e0/character02/0007_04.png", b"not a png")
  counts = {BG: jd.ArchiveCounts(15, 5, 2), EV: jd.ArchiveCounts(7, 2, 1)}
  with pytest.raises(jd.OmniglotArchiveError, match=r"cannot read image .*0007_04\.png"):
    jd.prepare_omniglot(tmp_path / "data", manual_dir=tmp_path / "manual", config=_config(counts))


def test_truncated_archive_rejected_against_expected_counts(tmp_path):
  jd.write_fake_omniglot(tmp_path / "manual", {BG: [3, 1], EV: [2]})
  with pytest.raises(jd.OmniglotArchiveError,
                     match=r"images_background\.zip: found 12 images of 4 characters in 2 "
                     r"alphabets; "
                     r"expected 15 images of 5 characters in 2 alphabets"):
    jd.prepare_omniglot(tmp_path / "data", manual_dir=tmp_path / "manual", config=_config())


def test_default_config_expects_the_real_counts(tmp_path):
  jd.write_fake_omniglot(tmp_path / "manual", CHARS)
  with pytest.raises(jd.OmniglotArchiveError,
                     match=r"expected 19280 images of 964 characters in 30"):
    jd.prepare_omniglot(tmp_path / "data", manual_dir=tmp_path / "manual")


@pytest.mark.parametrize("member, match", [
    ("images_background/Alphabet_b0/0001_01.png", "unexpected entry"),  # no character folder
    ("images_evaluation/Alphabet_b0/character01/0001_01.png", "unexpected entry"),  # wrong root
    ("images_background/Alphabet_b0/char01/0001_01.png", "unexpected entry"),
    ("images_background/Alphabet_b0/character01/0002_09.png", "mixes character IDs 1 and 2"),
])
def test_mislaid_archive(tmp_path, member, match):
  path = tmp_path / f"{BG}.zip"
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("images_background/Alphabet_b0/character01/0001_01.png", jd.fake_png(0))
    zf.writestr(member, jd.fake_png(1))
  with pytest.raises(jd.OmniglotArchiveError, match=match) as info:
    jd.scan_archive(path, BG)
  assert str(path) in str(info.value)


def test_mislaid_archive_through_the_builder(tmp_path):
  manual = tmp_path / "manual"
  jd.write_fake_omniglot(manual, CHARS)
  with zipfile.ZipFile(manual / f"{BG}.zip", "w") as zf:  # everything one level too deep
    zf.writestr(f"omniglot/{BG}/Alphabet_b0/character01/0001_01.png", jd.fake_png(0))
  with pytest.raises(jd.OmniglotArchiveError,
                     match=r"unexpected entry 'omniglot/images_background/"):
    jd.prepare_omniglot(tmp_path / "data", manual_dir=manual, config=_config())


def test_wrong_image_size(tmp_path):
  path = tmp_path / f"{BG}.zip"
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr(f"{BG}/A/character01/0001_01.png", jd.fake_png(0, size=28))
  entries = jd.scan_archive(path, BG, jd.ArchiveCounts(1, 1, 1))
  with pytest.raises(jd.OmniglotArchiveError, match=r"0001_01\.png' is 28x28; expected 105x105"):
    list(jd.read_images(path, entries))


def test_vinyals_split():
  split = jd.vinyals_split(1623, seed=0)
  assert [len(s) for s in split] == [1100, 100, 423]
  assert len(np.unique(np.concatenate(split))) == 1623
  again = jd.vinyals_split(1623, seed=0)
  other = jd.vinyals_split(1623, seed=1)
  np.testing.assert_array_equal(split.valid, again.valid)
  assert not np.array_equal(split.valid, other.valid)
  assert [len(s) for s in jd.vinyals_split(1623, num_valid=0)] == [1200, 0, 423]
  with pytest.raises(ValueError, match="num_train < num_classes"):
    jd.vinyals_split(100)


def test_lake_split():
  background = np.array([True] * 6 + [False] * 3)
  alphabet = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
  split = jd.lake_split(background, alphabet, num_valid_alphabets=1, seed=0)
  np.testing.assert_array_equal(split.test, [6, 7, 8])
  assert len(split.valid) == 2 and len(np.unique(alphabet[split.valid])) == 1
  assert not set(alphabet[split.valid]) & set(alphabet[split.train])
  with pytest.raises(ValueError, match="there are 3 background alphabets"):
    jd.lake_split(background, alphabet, num_valid_alphabets=3)


def test_add_rotations():
  x = np.arange(2 * 1 * 2 * 2).reshape(2, 1, 2, 2, 1)
  r = jd.add_rotations(x)
  assert r.shape == (8, 1, 2, 2, 1)
  np.testing.assert_array_equal(r[2, 0, ..., 0], [[1, 3], [0, 2]])  # class 0 rotated 90 degrees
  np.testing.assert_array_equal(r[5, 0, ..., 0], [[7, 6], [5, 4]])  # class 1 rotated 180
  with pytest.raises(ValueError, match=r"H == W, got shape \(2, 1, 2, 3, 1\)"):
    jd.add_rotations(np.zeros((2, 1, 2, 3, 1)))


def test_download_branch_without_network(tmp_path, monkeypatch):
  """With download=True, missing archives go through TFDS's download manager (mocked here)."""
  local = tmp_path / "upstream"
  jd.write_fake_omniglot(local, CHARS)
  requested = []

  def fake_download(self, url_or_urls):
    del self
    requested.append(dict(url_or_urls))
    return {root: local / url.rsplit("/", 1)[1] for root, url in url_or_urls.items()}

  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  builder = jd.prepare_omniglot(tmp_path / "data", download=True, config=_config())
  assert requested == [{
      BG: "https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip",
      EV: "https://github.com/brendenlake/omniglot/raw/master/python/images_evaluation.zip"}]
  assert len(builder.as_data_source(split="train")) == 15


def test_layout_only_config_accepts_any_counts(tmp_path):
  jd.write_fake_omniglot(tmp_path / "manual", {BG: [1, 1], EV: [3]}, drawers=2)
  config = jd.OmniglotConfig(name="layout_only", expected_counts={BG: None, EV: None})
  builder = jd.prepare_omniglot(tmp_path / "data", manual_dir=tmp_path / "manual", config=config)
  assert {k: len(v) for k, v in builder.as_data_source().items()} == {"train": 4, "test": 6}
