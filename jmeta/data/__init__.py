"""Datasets for few-shot learning: TFDS builders and class-indexed loaders.

Everything here works without TensorFlow: datasets are prepared as
array_record and read with ``tfds.data_source``.
"""

from jmeta.data._digits import load_digits
from jmeta.data._loader import ClassArrays
from jmeta.data._loader import group_by_class
from jmeta.data._loader import load_tfds_classes
from jmeta.data._loader import resize
from jmeta.data._mnist import load_mnist
from jmeta.data._omniglot import FewShotSplits
from jmeta.data._omniglot import load_omniglot
from jmeta.data._omniglot_archive import ArchiveCounts
from jmeta.data._omniglot_archive import OMNIGLOT_COUNTS
from jmeta.data._omniglot_archive import OmniglotArchiveError
from jmeta.data._omniglot_archive import read_images
from jmeta.data._omniglot_archive import scan_archive
from jmeta.data._omniglot_builder import OmniglotBuilder
from jmeta.data._omniglot_builder import OmniglotConfig
from jmeta.data._omniglot_builder import prepare_omniglot
from jmeta.data._splits import ClassSplit
from jmeta.data._splits import add_rotations
from jmeta.data._splits import example_split
from jmeta.data._splits import lake_split
from jmeta.data._splits import vinyals_split
from jmeta.data._testing import fake_png
from jmeta.data._testing import fake_png_array
from jmeta.data._testing import write_fake_omniglot

__all__ = [
    "ArchiveCounts",
    "ClassArrays",
    "ClassSplit",
    "FewShotSplits",
    "OMNIGLOT_COUNTS",
    "OmniglotArchiveError",
    "OmniglotBuilder",
    "OmniglotConfig",
    "add_rotations",
    "example_split",
    "fake_png",
    "fake_png_array",
    "group_by_class",
    "lake_split",
    "load_digits",
    "load_mnist",
    "load_omniglot",
    "load_tfds_classes",
    "prepare_omniglot",
    "read_images",
    "resize",
    "scan_archive",
    "vinyals_split",
    "write_fake_omniglot",
]
