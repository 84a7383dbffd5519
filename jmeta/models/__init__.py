"""Models used through a pure ``apply(params, x)``, and flax adapters."""

from jmeta.models._adapters import from_linen
from jmeta.models._adapters import from_nnx
from jmeta.models._adapters import path_mask
from jmeta.models._mlp import MLP

__all__ = (
    "MLP",
    "from_linen",
    "from_nnx",
    "path_mask",
)
