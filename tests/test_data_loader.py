"""Tests of the generic class-indexed loader (on tfds.testing.mock_data)."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import jmeta.data as jd


def test_mnist_from_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=120):
    classes = jd.load_tfds_classes("mnist", split="train", image_size=14, cache_dir=tmp_path)
    # The same random examples, straight from the mocked data source.
    source = tfds.data_source("mnist", split="train")
    labels = np.array([int(source[i]["label"]) for i in range(len(source))])
  present, counts = np.unique(labels, return_counts=True)
  assert classes.images.shape == (len(present), counts.min(), 14, 14, 1)
  assert classes.images.dtype == np.float32 and classes.labels.dtype == np.int32
  np.testing.assert_array_equal(classes.labels, present)
  assert 0.0 <= float(classes.images.min()) and float(classes.images.max()) <= 1.0
  assert len(list(tmp_path.glob("mnist-*-train-*.npz"))) == 1
  assert "tensorflow" not in sys.modules


def test_group_by_class_ragged():
  labels = np.array([2, 0, 2, 1, 0, 2, 1, 0, 0])
  index, classes = jd.group_by_class(labels)
  np.testing.assert_array_equal(classes, [0, 1, 2])
  # Minimum count (class 1 has 2); first examples of each class in order.
  np.testing.assert_array_equal(index, [[1, 4], [3, 6], [0, 2]])
  index, _ = jd.group_by_class(labels, examples_per_class=1, order=np.arange(9)[::-1])
  np.testing.assert_array_equal(index, [[8], [6], [5]])
  with pytest.raises(ValueError, match="examples_per_class=3 exceeds the 2 examples of class 1"):
    jd.group_by_class(labels, examples_per_class=3)


def test_resize_is_antialiased():
  stripes = np.zeros((1, 8, 8, 1), np.uint8)
  stripes[:, :, ::2] = 255  # one-pixel stripes average to grey when downsampled
  small = jd.resize(stripes, 4)
  assert small.shape == (1, 4, 4, 1)
  assert 100 < small.mean() < 155


def test_unknown_dataset(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset name='no_such_dataset'"):
    jd.load_tfds_classes("no_such_dataset", data_dir=tmp_path)


def test_dataset_not_prepared(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"dataset 'mnist' is not prepared in data_dir=.*"
                     r"tfds build mnist --file_format=array_record"):
    jd.load_tfds_classes("mnist", data_dir=tmp_path)


def test_unknown_split(tmp_path):
  manual = tmp_path / "manual"
  counts = jd.write_fake_omniglot(manual, {"images_background": [2], "images_evaluation": [1]})
  jd.prepare_omniglot(tmp_path / "data", manual_dir=manual,
                      config=jd.OmniglotConfig(name="tiny", expected_counts=counts))
  with pytest.raises(ValueError, match=r"has no split='valid'; it has \['test', 'train'\]"):
    jd.load_tfds_classes("jmeta_omniglot/tiny", split="valid", data_dir=tmp_path / "data")
  # The prepared Omniglot also loads through the generic path.
  classes = jd.load_tfds_classes("jmeta_omniglot/tiny", split="train", data_dir=tmp_path / "data",
                                 invert=True, image_size=28)
  assert classes.images.shape == (2, 3, 28, 28, 1)
  np.testing.assert_array_equal(classes.labels, [0, 1])
