"""Meta-learning algorithms, each a factory returning a ``MetaLearner``."""

from jmeta.algorithms._hyperparams import hypergradient_sgd
from jmeta.algorithms._hyperparams import learned_hyperparams
from jmeta.algorithms._hyperparams import sgd_with_weight_decay
from jmeta.algorithms._imaml import imaml
from jmeta.algorithms._learned_loss import learned_loss
from jmeta.algorithms._learned_loss import loss_network
from jmeta.algorithms._learned_optimizer import learned_optimizer
from jmeta.algorithms._learned_optimizer import learned_optimizer_transform
from jmeta.algorithms._learned_optimizer import mlp_optimizer
from jmeta.algorithms._maml import anil
from jmeta.algorithms._maml import fomaml
from jmeta.algorithms._maml import maml
from jmeta.algorithms._maml import meta_sgd
from jmeta.algorithms._maml_plus_plus import maml_plus_plus
from jmeta.algorithms._maml_plus_plus import multi_step_weights
from jmeta.algorithms._matching import cosine_attention
from jmeta.algorithms._matching import matching_networks
from jmeta.algorithms._protonet import protonet
from jmeta.algorithms._r2d2 import r2d2
from jmeta.algorithms._r2d2 import ridge_solve
from jmeta.algorithms._reptile import reptile

__all__ = (
    "anil",
    "cosine_attention",
    "fomaml",
    "hypergradient_sgd",
    "imaml",
    "learned_hyperparams",
    "learned_loss",
    "learned_optimizer",
    "learned_optimizer_transform",
    "loss_network",
    "maml",
    "maml_plus_plus",
    "matching_networks",
    "meta_sgd",
    "mlp_optimizer",
    "multi_step_weights",
    "protonet",
    "r2d2",
    "reptile",
    "ridge_solve",
    "sgd_with_weight_decay",
)
