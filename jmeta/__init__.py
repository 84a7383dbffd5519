"""jmeta: meta-learning in JAX, as pure functions over pytrees."""

from jmeta import algorithms
from jmeta import models
from jmeta import tasks
from jmeta._base import AdaptResult
from jmeta._fit import fit
from jmeta._base import MetaLearner
from jmeta._base import Task
from jmeta._inner import inner_loop
from jmeta._losses import binary_cross_entropy_loss
from jmeta._losses import cross_entropy_loss
from jmeta._losses import mse_loss
from jmeta._meta_step import MetaState
from jmeta._meta_step import MetaStep
from jmeta._meta_step import make_meta_step
from jmeta._task_map import mean_over_tasks
from jmeta.algorithms import anil
from jmeta.algorithms import fomaml
from jmeta.algorithms import maml
from jmeta.algorithms import meta_sgd
from jmeta.algorithms import reptile
from jmeta.evaluation import evaluate
from jmeta.evaluation import mean_ci95
from jmeta.models import MLP
from jmeta.models import from_linen
from jmeta.models import from_nnx
from jmeta.models import path_mask
from jmeta.tasks import TaskFamily
from jmeta.tasks import linear_regression
from jmeta.tasks import logistic_regression
from jmeta.tasks import sample_episode
from jmeta.tasks import sample_episodes
from jmeta.tasks import sinusoid

__version__ = "0.1.0"

__all__ = (
    "AdaptResult",
    "MLP",
    "MetaLearner",
    "MetaState",
    "MetaStep",
    "Task",
    "TaskFamily",
    "algorithms",
    "anil",
    "binary_cross_entropy_loss",
    "cross_entropy_loss",
    "evaluate",
    "fit",
    "fomaml",
    "from_linen",
    "from_nnx",
    "inner_loop",
    "linear_regression",
    "logistic_regression",
    "make_meta_step",
    "maml",
    "mean_ci95",
    "mean_over_tasks",
    "meta_sgd",
    "models",
    "mse_loss",
    "path_mask",
    "reptile",
    "sample_episode",
    "sample_episodes",
    "sinusoid",
    "tasks",
)
