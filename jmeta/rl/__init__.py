"""Meta-reinforcement learning: environments as pure functions, policies, MAML-RL with DiCE, RL² with PPO."""

from jmeta.rl._bandit_baselines import bandit_baselines
from jmeta.rl._bandit_baselines import gittins
from jmeta.rl._bandit_baselines import gittins_table
from jmeta.rl._bandit_baselines import random_arms
from jmeta.rl._bandit_baselines import thompson
from jmeta.rl._bandit_baselines import ucb1
from jmeta.rl._envs import BanditState
from jmeta.rl._envs import Env
from jmeta.rl._envs import MassState
from jmeta.rl._envs import PointState
from jmeta.rl._envs import RLTask
from jmeta.rl._envs import bernoulli_bandit
from jmeta.rl._envs import check_rl_batch
from jmeta.rl._envs import point_mass
from jmeta.rl._envs import point_nav
from jmeta.rl._estimators import Trajectory
from jmeta.rl._estimators import dice_surrogate
from jmeta.rl._estimators import discounted_returns
from jmeta.rl._estimators import gae
from jmeta.rl._estimators import linear_baseline
from jmeta.rl._estimators import linear_features
from jmeta.rl._estimators import log_probs
from jmeta.rl._estimators import magic_box
from jmeta.rl._estimators import reinforce_surrogate
from jmeta.rl._estimators import rollout
from jmeta.rl._estimators import rollouts
from jmeta.rl._maml_rl import MetaIteration
from jmeta.rl._maml_rl import maml_rl
from jmeta.rl._maml_rl import meta_iteration
from jmeta.rl._plots import nav_positions
from jmeta.rl._promp import PrompBatch
from jmeta.rl._promp import promp_iteration
from jmeta.rl._plots import plot_nav_adaptation
from jmeta.rl._policies import CategoricalMLP
from jmeta.rl._policies import Distribution
from jmeta.rl._policies import GaussianMLP
from jmeta.rl._policies import GRUPolicy
from jmeta.rl._policies import categorical
from jmeta.rl._policies import gaussian
from jmeta.rl._rl2 import RL2
from jmeta.rl._rl2 import TrialStep
from jmeta.rl._rl2 import ppo_clip_objective
from jmeta.rl._rl2 import rl2
from jmeta.rl._rl2 import trial_replay
from jmeta.rl._rl2 import trial_rollout

__all__ = (
    "bandit_baselines",
    "BanditState",
    "bernoulli_bandit",
    "categorical",
    "CategoricalMLP",
    "check_rl_batch",
    "dice_surrogate",
    "discounted_returns",
    "Distribution",
    "Env",
    "gae",
    "gaussian",
    "GaussianMLP",
    "gittins",
    "gittins_table",
    "GRUPolicy",
    "linear_baseline",
    "linear_features",
    "log_probs",
    "magic_box",
    "maml_rl",
    "MassState",
    "meta_iteration",
    "nav_positions",
    "MetaIteration",
    "point_mass",
    "point_nav",
    "plot_nav_adaptation",
    "PointState",
    "PrompBatch",
    "promp_iteration",
    "ppo_clip_objective",
    "random_arms",
    "reinforce_surrogate",
    "rl2",
    "RL2",
    "RLTask",
    "rollout",
    "rollouts",
    "thompson",
    "Trajectory",
    "trial_replay",
    "trial_rollout",
    "TrialStep",
    "ucb1",
)
