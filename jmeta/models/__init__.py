"""Models used through a pure ``apply(params, x)``, and flax adapters."""

from jmeta.models._adapters import from_linen
from jmeta.models._adapters import from_nnx
from jmeta.models._adapters import path_mask
from jmeta.models._conv import BatchStatNorm
from jmeta.models._conv import Conv
from jmeta.models._conv import ConvBody
from jmeta.models._conv import ConvNet
from jmeta.models._mlp import MLP
from jmeta.models._ops import batch_stat_norm
from jmeta.models._ops import conv2d
from jmeta.models._ops import max_pool_2x2

__all__ = (
    "BatchStatNorm",
    "Conv",
    "ConvBody",
    "ConvNet",
    "MLP",
    "batch_stat_norm",
    "conv2d",
    "from_linen",
    "from_nnx",
    "max_pool_2x2",
    "path_mask",
)
