"""jmeta: meta-learning in JAX, as pure functions over pytrees."""

from jmeta import algorithms
from jmeta import models
from jmeta import rl
from jmeta import tasks
from jmeta._base import AdaptResult
from jmeta._fit import fit
from jmeta._cg import cg
from jmeta._cg import normal_cg
from jmeta._cg import SolveInfo
from jmeta._checkpoint import CheckpointError
from jmeta._checkpoint import restore_checkpoint
from jmeta._checkpoint import save_checkpoint
from jmeta._distributed import initialize as initialize_distributed
from jmeta._distributed import process_tasks
from jmeta._distributed import to_host
from jmeta._implicit import custom_root
from jmeta._implicit import root_vjp
from jmeta._newton import gauss_newton
from jmeta._newton import newton
from jmeta._newton import NewtonState
from jmeta._remat import checkpointed_scan
from jmeta._remat import segment_sizes
from jmeta._sharding import replicate
from jmeta._sharding import shard_tasks
from jmeta._sharding import task_mesh
from jmeta._base import MetaLearner
from jmeta._base import Task
from jmeta._inner import inner_loop
from jmeta._losses import binary_cross_entropy_loss
from jmeta._losses import cross_entropy_loss
from jmeta._losses import mse_loss
from jmeta._meta_step import MetaState
from jmeta._meta_step import MetaStep
from jmeta._meta_step import make_meta_step
from jmeta._task_map import AUTO_SCAN_ELEMENTS
from jmeta._task_map import mean_over_tasks
from jmeta._task_map import resolve_task_map
from jmeta.algorithms._hyperparams import HypergradientSGDState
from jmeta.algorithms._hyperparams import hyperparams_of
from jmeta.algorithms._learned_loss import LearnedLoss
from jmeta.algorithms._learned_optimizer import LearnedOptimizer
from jmeta.algorithms._learned_optimizer import LearnedOptimizerState
from jmeta.algorithms import anil
from jmeta.algorithms import hypergradient_sgd
from jmeta.algorithms import imaml
from jmeta.algorithms import learned_hyperparams
from jmeta.algorithms import learned_loss
from jmeta.algorithms import learned_optimizer
from jmeta.algorithms import learned_optimizer_transform
from jmeta.algorithms import loss_network
from jmeta.algorithms import maml_plus_plus
from jmeta.algorithms import matching_networks
from jmeta.algorithms import mlp_optimizer
from jmeta.algorithms import protonet
from jmeta.algorithms import r2d2
from jmeta.algorithms import sgd_with_weight_decay
from jmeta.algorithms import fomaml
from jmeta.algorithms import maml
from jmeta.algorithms import meta_sgd
from jmeta.algorithms import reptile
from jmeta.evaluation import evaluate
from jmeta.evaluation import mean_ci95
from jmeta.models import MLP
from jmeta.models import ConvBody
from jmeta.models import ConvNet
from jmeta.models import from_linen
from jmeta.models import from_nnx
from jmeta.models import path_mask
from jmeta.models import xla_flags_with_f64_workaround
from jmeta.tasks import TaskFamily
from jmeta.tasks import linear_regression
from jmeta.tasks import logistic_regression
from jmeta.tasks import sample_episode
from jmeta.tasks import sample_episodes
from jmeta.tasks import sinusoid

__version__ = "0.1.0"

__all__ = (
    "AdaptResult",
    "AUTO_SCAN_ELEMENTS",
    "algorithms",
    "anil",
    "binary_cross_entropy_loss",
    "cg",
    "checkpointed_scan",
    "CheckpointError",
    "ConvBody",
    "ConvNet",
    "cross_entropy_loss",
    "custom_root",
    "evaluate",
    "fit",
    "fomaml",
    "from_linen",
    "from_nnx",
    "gauss_newton",
    "hypergradient_sgd",
    "HypergradientSGDState",
    "hyperparams_of",
    "imaml",
    "initialize_distributed",
    "inner_loop",
    "learned_hyperparams",
    "learned_loss",
    "learned_optimizer",
    "learned_optimizer_transform",
    "LearnedLoss",
    "LearnedOptimizer",
    "LearnedOptimizerState",
    "linear_regression",
    "logistic_regression",
    "loss_network",
    "make_meta_step",
    "maml",
    "maml_plus_plus",
    "matching_networks",
    "mean_ci95",
    "mean_over_tasks",
    "meta_sgd",
    "MetaLearner",
    "MetaState",
    "MetaStep",
    "MLP",
    "mlp_optimizer",
    "models",
    "mse_loss",
    "newton",
    "NewtonState",
    "normal_cg",
    "path_mask",
    "process_tasks",
    "protonet",
    "r2d2",
    "replicate",
    "reptile",
    "rl",
    "resolve_task_map",
    "restore_checkpoint",
    "root_vjp",
    "sample_episode",
    "sample_episodes",
    "save_checkpoint",
    "segment_sizes",
    "sgd_with_weight_decay",
    "shard_tasks",
    "sinusoid",
    "SolveInfo",
    "Task",
    "task_mesh",
    "TaskFamily",
    "tasks",
    "to_host",
    "xla_flags_with_f64_workaround",
)
