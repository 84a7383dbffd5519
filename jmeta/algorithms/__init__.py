"""Meta-learning algorithms, each a factory returning a ``MetaLearner``."""

from jmeta.algorithms._maml import anil
from jmeta.algorithms._maml import fomaml
from jmeta.algorithms._maml import maml
from jmeta.algorithms._maml import meta_sgd
from jmeta.algorithms._maml_plus_plus import maml_plus_plus
from jmeta.algorithms._matching import matching_networks
from jmeta.algorithms._protonet import protonet
from jmeta.algorithms._r2d2 import r2d2
from jmeta.algorithms._reptile import reptile

__all__ = (
    "anil",
    "fomaml",
    "maml",
    "maml_plus_plus",
    "matching_networks",
    "meta_sgd",
    "protonet",
    "r2d2",
    "reptile",
)
