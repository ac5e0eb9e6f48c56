"""Self-checking exercises of the book: `check_<name>(student_fn)`, one module per chapter.

Nothing else in the package imports this subpackage.
"""

from tutorial_sae.exercises.ch1 import check_gelu, check_norms, check_soft_threshold
from tutorial_sae.exercises.ch2 import check_encode, check_remove_parallel_grad, check_sae_loss
from tutorial_sae.exercises.ch3 import (
    check_ce_loss_recovered,
    check_dead_feature_mask,
    check_ghost_grad_loss,
)
from tutorial_sae.exercises.ch4 import (
    check_best_match_cosine,
    check_cosine_neighbours,
    check_knn_agreement,
)
from tutorial_sae.exercises.ch5 import (
    check_llr,
    check_specificity_sensitivity,
    check_token_scripts,
)
from tutorial_sae.exercises.ch6 import (
    check_ablated_activation,
    check_attribution,
    check_jaccard_top_k,
)
from tutorial_sae.exercises.ch7 import (
    check_isotropic_cosine,
    check_random_walk,
    check_slerp,
)
from tutorial_sae.exercises.ch8 import (
    check_corrupt_subject,
    check_counterfact_scores,
    check_rank_one_update,
)
from tutorial_sae.exercises.runner import CheckResult, set_time_limit

__all__ = [
    "CheckResult",
    "set_time_limit",
    "check_encode",
    "check_gelu",
    "check_norms",
    "check_remove_parallel_grad",
    "check_sae_loss",
    "check_soft_threshold",
    "check_ce_loss_recovered",
    "check_dead_feature_mask",
    "check_ghost_grad_loss",
    "check_best_match_cosine",
    "check_cosine_neighbours",
    "check_knn_agreement",
    "check_llr",
    "check_specificity_sensitivity",
    "check_token_scripts",
    "check_ablated_activation",
    "check_attribution",
    "check_jaccard_top_k",
    "check_isotropic_cosine",
    "check_random_walk",
    "check_slerp",
    "check_corrupt_subject",
    "check_counterfact_scores",
    "check_rank_one_update",
]
