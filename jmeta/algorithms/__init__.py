"""Meta-learning algorithms, each a factory returning a ``MetaLearner``."""

from jmeta.algorithms._maml import anil
from jmeta.algorithms._maml import fomaml
from jmeta.algorithms._maml import maml
from jmeta.algorithms._maml import meta_sgd
from jmeta.algorithms._reptile import reptile

__all__ = (
    "anil",
    "fomaml",
    "maml",
    "meta_sgd",
    "reptile",
)
