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
from jmeta.models._ops import check_float64_xla
from jmeta.models._ops import conv2d
from jmeta.models._ops import max_pool_2x2
from jmeta.models._ops import resolve_conv_impl
from jmeta.models._ops import XLA_F64_WORKAROUND
from jmeta.models._ops import xla_f64_workaround_needed
from jmeta.models._ops import xla_flags_with_f64_workaround

__all__ = (
    "BatchStatNorm",
    "Conv",
    "ConvBody",
    "ConvNet",
    "MLP",
    "batch_stat_norm",
    "check_float64_xla",
    "conv2d",
    "from_linen",
    "from_nnx",
    "max_pool_2x2",
    "path_mask",
    "resolve_conv_impl",
    "XLA_F64_WORKAROUND",
    "xla_f64_workaround_needed",
    "xla_flags_with_f64_workaround",
)
