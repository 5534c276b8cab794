"""Typed model and objective configurations (plain dataclasses: no torch, so commands validate
their configuration before the heavy imports).

``model=<name>`` picks one of the architecture schemas (``configs/model/*.yaml``): the network and
what it reads, nothing else. The objective is :class:`LossConfig` (``loss=<name>``,
``configs/loss/*.yaml``) and the optimiser :class:`journeyrec.training.config.OptimConfig`
(``optim=...``), so an architecture trains with any loss without its config changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

__all__ = [
    "LossConfig",
    "ModelConfig",
    "SASRecConfig",
    "BERT4RecConfig",
    "GRU4RecConfig",
    "TwoTowerConfig",
    "MODEL_CONFIGS",
    "LOSS_TARGETS",
    "TransitionsConfig",
]

# loss.targets: which positions are trained (see LossConfig.targets)
LOSS_TARGETS: tuple[str, ...] = ("every", "newest")


@dataclass
class ModelConfig:
    """What every model reads: its window, the per-position features and the item attributes."""

    name: str = MISSING
    max_len: int = 50
    features: List[str] = field(default_factory=list)  # per position: event_type | channel | time_gap
    # item vectors = id embedding + mean embedding of these attributes:
    # category | brand | price | size | colour | repurchase_class | tags
    attributes: List[str] = field(default_factory=list)
    id_dropout: float = 0.0  # training-time probability of hiding an item's id embedding (attribute-only vectors)
    d_model: int = 64
    dropout: float = 0.2


@dataclass
class SASRecConfig(ModelConfig):
    name: str = "sasrec"
    n_blocks: int = 2
    n_heads: int = 2
    ffn_mult: int = 4  # feed-forward width = ffn_mult * d_model
    activation: str = "gelu"  # gelu | relu
    # one learned logit offset for items already in the sequence (fitted with the embeddings held
    # fixed); needs loss=softmax
    repeat_bias: bool = False
    # from_end (newest event = last position) | from_start (first item = 0) | relative (attention bias by distance)
    positions: str = "from_end"
    mixer: str = "attention"  # attention | bsa (attention mixed with BSARec's low/high-pass filter)
    filter_alpha: float = 0.7  # bsa: weight of the filter in the mix (1 - alpha: attention)
    filter_cutoff: int = 3  # bsa: lowest frequencies of a max_len window the low-pass keeps (BSARec's c // 2 + 1)
    # false: every position reads the whole window (attention and filter), needs loss.targets=newest
    causal: bool = True


@dataclass
class BERT4RecConfig(ModelConfig):
    name: str = "bert4rec"
    n_blocks: int = 2
    n_heads: int = 2
    mask_prob: float = 0.2  # share of positions replaced by [MASK] in training
    mask_last_share: float = 0.0  # share of sequences that mask only their newest item (inference's question)


@dataclass
class GRU4RecConfig(ModelConfig):
    name: str = "gru4rec"
    n_layers: int = 1


@dataclass
class TwoTowerConfig(ModelConfig):
    name: str = "two_tower"
    n_blocks: int = 2
    n_heads: int = 2
    normalize: bool = True  # cosine similarity (both towers L2-normalised); the loss's temperature scales it


MODEL_CONFIGS: dict[str, type[ModelConfig]] = {
    "sasrec": SASRecConfig,
    "bert4rec": BERT4RecConfig,
    "gru4rec": GRU4RecConfig,
    "two_tower": TwoTowerConfig,
}


@dataclass
class LossConfig:
    """The training objective (``loss=<name>``, ``configs/loss/*.yaml``): which loss, which
    negatives, how positions are weighted, and the auxiliary terms added to it."""

    name: str = "softmax"  # softmax | sampled_softmax | bce | gbce
    negatives: str = "uniform"  # uniform | popularity | in_batch | mixed (sampled losses only)
    n_negatives: int = 1  # sampled negatives (per batch for sampled_softmax, per position for bce / gbce)
    logq: bool = True  # sampled_softmax: subtract log expected count of each candidate
    pop_alpha: float = 0.75  # popularity negatives ~ (count + 1) ** pop_alpha
    label_smoothing: float = 0.0  # softmax only
    gbce_t: float = 0.75  # gbce calibration parameter t
    # softmax only: each position's softmax leaves out the user's earlier items (never the target)
    exclude_seen: bool = False
    # logits = session . item / temperature; None: the model's own default (1, or 0.05 for cosine two-tower)
    temperature: Optional[float] = None
    event_type_weights: Dict[str, float] = field(
        default_factory=dict
    )  # loss weight per target event type, e.g. {purchase: 3.0}
    # every: one window per user, a target at every position | newest: one window per target, read
    # at its newest position (BSARec's training; what a non-causal model, model.causal=false, needs)
    targets: str = "every"
    # > 0: a target k steps before its user's newest training target weighs 0.5 ** (k / halflife)
    recency_halflife: Optional[float] = None
    intent_weight: float = 0.0  # > 0: train a purchase-intent head jointly with this weight (causal models)
    contrastive_weight: float = 0.0  # > 0: InfoNCE between two dropout views of each session (extra forward pass)
    contrastive_temperature: float = 0.2


@dataclass
class TransitionsConfig:
    """Item-to-item transition counts added to the trained model's logits
    (:mod:`journeyrec.models.transitions`): ``weight * log(1 + count)`` of the items that followed
    the session's last ``history`` items within ``window`` positions in the training prefixes."""

    # blend weights tried on the validation split after the fit; the best by trainer.monitor is kept
    # (0, the model alone, is always tried). Empty: off
    weights: List[float] = field(default_factory=list)
    window: int = 3
    history: int = 3

    def __post_init__(self) -> None:
        if any(w < 0 for w in self.weights):
            raise ValueError(f"transitions.weights={list(self.weights)}: weights must be >= 0 (0 = the model alone)")
        if self.window < 1 or self.history < 1:
            raise ValueError(f"transitions.window={self.window}, transitions.history={self.history}: both must be >= 1")
