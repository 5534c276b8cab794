"""LightningModule: next-item training with a configurable loss, full-ranking validation.

The training step is one pass of tensor code with no Python loop over positions and no host
synchronisation: the model's training view of the batch (next-item targets; masked items for
BERT4Rec) -> hidden states -> packed target positions -> the configured loss (full / sampled
softmax, BCE, gBCE; see :mod:`journeyrec.models.losses`), weighted per target event type,
plus the purchase-intent head's binary cross-entropy when the model has one.

Data-parallel training (``trainer=ddp``): each process computes its slice of the global batch
and DDP averages the gradients over the processes, so the per-process loss is rescaled from a
local mean to ``world_size * local_sum / global_count`` (the count all-reduced over processes):
the averaged gradient is then exactly the gradient of the single-process mean over the global
batch, whatever share of the targets each process holds. This is exact for full softmax, BCE
with sampled negatives in distribution only (each process draws its own negatives), and not for
the in-batch parts (in-batch negatives, the contrastive term), which see only the local slice.

Validation calls :func:`journeyrec.evaluation.ranking.rank_batch` and
:func:`journeyrec.evaluation.metrics.summarise`, the same functions offline evaluation uses.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from journeyrec.data.schema import EVENT_TYPES
from journeyrec.evaluation.metrics import DEFAULT_KS, summarise
from journeyrec.evaluation.ranking import rank_batch
from journeyrec.models.base import SequenceModel
from journeyrec.models.config import LOSS_TARGETS
from journeyrec.models.losses import LossConfig, RecLoss
from journeyrec.training.config import OptimConfig
from journeyrec.training.optim import SparseDenseAdam

__all__ = ["RecModule", "event_type_weight_table", "recency_weights", "seen_items", "contrastive_loss", "local_ids"]

log = logging.getLogger(__name__)


def event_type_weight_table(weights: Mapping[str, float] | None) -> torch.Tensor | None:
    """Loss weight per event-type code (index 0 = padding); None when every weight is 1."""
    if not weights:
        return None
    unknown = sorted(set(weights) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"loss.event_type_weights names unknown event type(s) {unknown}; known: {list(EVENT_TYPES)}")
    table = torch.ones(len(EVENT_TYPES) + 1)
    for name, w in weights.items():
        if w < 0:
            raise ValueError(f"loss.event_type_weights.{name} = {w}: weights must be >= 0")
        table[EVENT_TYPES.index(name) + 1] = float(w)
    return None if bool((table == 1).all()) else table


def recency_weights(targets: torch.Tensor, halflife: float) -> torch.Tensor:
    """[B, L] loss weight of each target column: 0.5 ** (k / halflife), k = how many targets of its
    row come after it. Training windows are left-padded and end at the user's newest training
    target, so k is the distance from the last column. Why: the items shoppers pick drift, and the
    newest targets are the closest in time to what is predicted next (``loss.recency_halflife``)."""
    steps_back = torch.arange(targets.shape[1] - 1, -1, -1, device=targets.device, dtype=torch.float32)
    return torch.pow(0.5, steps_back / halflife).expand(targets.shape)


def seen_items(sequence: torch.Tensor, mask: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """[P, L] the items each target position's user had (0 = none): the window up to and
    including the position (causal models) or the whole window (bidirectional), for the
    positions selected by ``mask`` [B, L], in the order ``hidden[mask]`` packs them."""
    length = sequence.shape[1]
    hist = sequence[:, None, :].expand(-1, length, -1)
    if causal:
        hist = hist * torch.ones(length, length, dtype=torch.bool, device=sequence.device).tril()
    return hist[mask]


def local_ids(*tensors: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The sorted unique item ids of ``tensors`` (0 always included, so it is row 0) and each
    tensor renumbered as positions in them (None stays None)."""
    present = [t for t in tensors if t is not None]
    zero = torch.zeros(1, dtype=torch.long, device=present[0].device)
    ids, inverse = torch.unique(torch.cat([zero] + [t.reshape(-1) for t in present]), return_inverse=True)
    parts = iter(inverse[1:].split([t.numel() for t in present]))
    return ids, [None if t is None else next(parts).view(t.shape) for t in tensors]


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, key: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Symmetric InfoNCE between two views [B, D] of the same sessions (cosine / temperature);
    pairs of different sessions sharing ``key`` (their next item) are not counted as negatives."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    same = (key[:, None] == key[None, :]) & ~torch.eye(len(key), dtype=torch.bool, device=key.device)
    logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(len(key), device=key.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class RecModule(pl.LightningModule):
    """Wraps any journeyrec sequence model (see ``journeyrec.models``) for Lightning.

    Args:
        loss: the objective (:class:`LossConfig`): loss and negatives, temperature, per-target
            event-type weights, and the auxiliary terms: the purchase-intent head's BCE
            (``intent_weight``, trained on ``intent_labels``) and the contrastive term between two
            dropout views of each session (``contrastive_weight``, as in DuoRec / CL4SRec).
        optim: the optimiser (:class:`OptimConfig`); ``max_steps`` is the horizon of its cosine schedule.
        item_counts: [N + 1] training target counts (popularity negatives, logQ of in-batch).
        intent_labels: per CSR position 0 = unknown, 1 = no purchase later in the session,
            2 = purchase later (see :func:`journeyrec.models.intent.intent_labels`).
        compile: ``torch.compile`` the model's forward for training (evaluation and export use
            the plain module).
    """

    # buffers (register_buffer), typed: nn.Module's attribute lookup cannot tell
    etype_weights: torch.Tensor
    intent_labels: torch.Tensor

    def __init__(
        self,
        model: SequenceModel,
        loss: LossConfig | None = None,
        optim: OptimConfig | None = None,
        ks: Sequence[int] = DEFAULT_KS,
        item_counts: np.ndarray | None = None,
        intent_labels: np.ndarray | None = None,
        max_steps: int = 0,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        cfg = loss or LossConfig()
        self.optim_cfg = optim or OptimConfig()
        n_items = int(model.hparams["n_items"])
        self.loss_fn = RecLoss(cfg, n_items, item_counts)
        self.ks = tuple(ks)
        self.temperature = float(
            cfg.temperature if cfg.temperature is not None else getattr(model, "default_temperature", 1.0)
        )
        table = event_type_weight_table(cfg.event_type_weights)
        self.register_buffer("etype_weights", table if table is not None else torch.zeros(0), persistent=False)
        if cfg.targets not in LOSS_TARGETS:
            raise ValueError(
                f"loss.targets={cfg.targets!r}; allowed: every (a target at every position of one window "
                "per user), newest (one window per target, its newest position)"
            )
        if cfg.targets == "newest" and hasattr(model, "training_view"):
            raise ValueError("loss.targets=newest is for next-item models; bert4rec chooses its own masked targets")
        if model.hparams.get("causal") is False and cfg.targets != "newest":
            raise ValueError(
                "model.causal=false lets every position read later items, so only the newest position "
                "can be trained: set loss.targets=newest"
            )
        if cfg.targets == "newest" and cfg.recency_halflife is not None:
            raise ValueError(
                "loss.recency_halflife weighs each target by the targets after it in its window; with "
                "loss.targets=newest a window has one target: set loss.recency_halflife=null"
            )
        if cfg.targets == "newest" and cfg.intent_weight > 0:
            raise ValueError(
                "loss.intent_weight > 0 trains the intent head at every position; loss.targets=newest "
                "computes the newest one only: set loss.intent_weight=0 or loss.targets=every"
            )
        self.newest = cfg.targets == "newest"
        if cfg.recency_halflife is not None and cfg.recency_halflife <= 0:
            raise ValueError(f"loss.recency_halflife = {cfg.recency_halflife}: must be > 0 (or null for equal weights)")
        self.recency_halflife = cfg.recency_halflife
        self.contrastive_weight = float(cfg.contrastive_weight)
        self.contrastive_temperature = float(cfg.contrastive_temperature)
        self.intent_weight = float(cfg.intent_weight)
        if self.intent_weight > 0:
            if not hasattr(model, "intent_head"):
                raise ValueError("loss.intent_weight > 0 needs a model with an intent head (causal models)")
            if intent_labels is None:
                raise ValueError("loss.intent_weight > 0 needs intent labels (event-typed data with purchases)")
            lab = np.zeros(len(intent_labels) + 1, dtype=np.int64)  # last slot: padding position -1
            lab[:-1] = intent_labels
            self.register_buffer("intent_labels", torch.from_numpy(lab), persistent=False)
        if self._repeat_bias() is not None:
            if cfg.name != "softmax":
                raise ValueError(f"model.repeat_bias=true needs loss=softmax (full softmax), not {cfg.name}")
            if self.temperature != 1.0:
                raise ValueError("model.repeat_bias=true needs loss.temperature=1 (the bias is learned in logit units)")
        # sampled losses: the step gathers the rows it reads instead of building the item table
        self.gather_rows = self.loss_fn.samples and hasattr(model, "item_rows")
        self.sparse_item_grad = bool(self.optim_cfg.sparse_item_grad)
        if self.sparse_item_grad:
            if not self.gather_rows:
                raise ValueError(
                    f"optim.sparse_item_grad=true needs a sampled loss (sampled_softmax, bce or gbce) and a "
                    f"model with an item table; loss={cfg.name} reads every item: set sparse_item_grad=false"
                )
            model.item_embedding.sparse_grad = True
        self.max_steps = int(max_steps)
        # torch.compile of the model's forward for training only (evaluation and export use the
        # plain module). Kept out of the module tree so state_dict keys do not change. With
        # loss.targets=newest each window's one target is its newest position, so the forward is
        # the session vector's (the last block computes that position only)
        forward = model.last_hidden if self.newest else model
        self.__dict__["_train_forward"] = torch.compile(forward) if compile else forward
        self._eval: dict[str, list[dict[str, torch.Tensor]]] = {}
        self.last_ranks: dict[str, dict[str, np.ndarray]] = {}

    def _global_share(self, local_count: torch.Tensor) -> torch.Tensor | None:
        """``world_size * local_count / global_count``: turns this process's local mean into its
        share of the global-batch mean (DDP then averages over processes); None on one process.
        The all-reduce is a collective on device tensors, not a host synchronisation."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return None
        local = local_count.detach().float()
        total = trainer.strategy.reduce(local.clone(), reduce_op="sum")
        return local * trainer.world_size / total.clamp_min(1e-12)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        training_view = getattr(self.model, "training_view", None)  # BERT4Rec's masked view
        view: dict[str, torch.Tensor] = training_view(batch) if training_view is not None else batch
        items, targets = view["items"], view["targets"]
        feats = {name: view[name] for name in self.model.feature_names}
        mask = (targets != 0) & (items != 0)
        negatives = ids = None
        table: torch.Tensor | None
        if self.gather_rows:
            # only the rows of this step's items, targets and negatives: nothing catalogue-sized
            # is built, and the ids are renumbered as row positions (0, padding, stays 0)
            n_pos = batch["target_index"].numel() if view is batch and "target_index" in batch else int(mask.sum())
            negatives = self.loss_fn.draw_negatives(n_pos, items.device)
            ids, (local_items, local_targets, negatives) = local_ids(items, targets, negatives)
            assert local_items is not None and local_targets is not None  # tensors in, tensors out
            items, targets = local_items, local_targets
            table = self.model.item_rows(ids)
        else:
            table = self.model.item_table() if hasattr(self.model, "item_table") else None
        forward = self.__dict__["_train_forward"]

        def encode() -> torch.Tensor:
            out = forward(items, feats, table=table) if table is not None else forward(items, feats)
            return out[:, None] if self.newest else out  # newest: [B, 1, D], each window's one target

        hidden = encode()
        vectors = self.model.item_vectors(table) if table is not None else self.model.item_vectors()
        # packing the target positions: with the host-computed ``target_index`` (TrainWindows;
        # valid when the view is the batch itself) it is an index_select of known size and the
        # step has no host synchronisation; a model's own view (BERT4Rec's random masking)
        # packs by boolean mask, whose size the host has to wait for on a GPU
        if view is batch and "target_index" in batch:
            index = batch["target_index"]

            def pack(t: torch.Tensor) -> torch.Tensor:
                return t.flatten(0, 1).index_select(0, index)
        else:

            def pack(t: torch.Tensor) -> torch.Tensor:
                return t[mask]

        weights = None
        if self.etype_weights.numel():
            weights = self.etype_weights[pack(view["target_event_type"])]
        if self.recency_halflife is not None:
            recency = pack(recency_weights(targets, self.recency_halflife))
            weights = recency if weights is None else weights * recency
        h = hidden[:, -1] if self.newest else pack(hidden)
        if self.temperature != 1.0:
            h = h / self.temperature
        seen = None
        bias = self._repeat_bias()
        if self.loss_fn.cfg.exclude_seen or bias is not None:
            seen = seen_items(view.get("sequence", items), mask, getattr(self.model, "causal", True))
        loss = self.loss_fn(h, vectors, pack(targets), weights, seen, bias, negatives, ids)
        self.log("train/loss", loss.detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=items.shape[0])
        share = self._global_share(weights.sum() if weights is not None else mask.sum())
        if share is not None:
            loss = loss * share
        if self.contrastive_weight > 0:
            # a second pass draws other dropout masks: the two views of a session attract each
            # other and repel the batch's other sessions (those with the same next item excluded)
            h2 = encode()
            cl = contrastive_loss(hidden[:, -1], h2[:, -1], targets[:, -1], self.contrastive_temperature)
            self.log("train/contrastive_loss", cl.detach(), on_step=False, on_epoch=True, batch_size=items.shape[0])
            loss = loss + self.contrastive_weight * cl
        if self.intent_weight > 0:
            lab = self.intent_labels[batch["positions"]]  # -1 (padding) hits the final 0 slot
            known = lab > 0
            logits = self.model.intent_logits(hidden[known])
            intent = (
                F.binary_cross_entropy_with_logits(logits, (lab[known] == 2).float())
                if logits.numel()
                else logits.sum()
            )
            self.log("train/intent_loss", intent.detach(), on_step=False, on_epoch=True, batch_size=items.shape[0])
            share = self._global_share(known.sum())
            if share is not None:
                intent = intent * share
            loss = loss + self.intent_weight * intent
        return loss

    def _repeat_bias(self) -> torch.Tensor | None:
        bias = getattr(self.model, "repeat_bias", None)
        return bias if isinstance(bias, torch.Tensor) else None

    # --- evaluation: collect ranks per case, summarise at epoch end --------------------------
    def _eval_step(self, split: str, batch: dict[str, torch.Tensor]) -> None:
        # float32 even under bf16 autocast: bf16 scores tie often and would rank targets
        # differently from the offline evaluation of the same weights (evaluation is float32)
        with torch.autocast(device_type=self.device.type, enabled=False):
            ranks = rank_batch(self.model, batch)
        ranks["case_index"] = batch["case_index"]
        self._eval.setdefault(split, []).append({k: v.detach() for k, v in ranks.items()})

    def _eval_end(self, split: str) -> None:
        parts = self._eval.pop(split, [])
        if not parts:
            return
        cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        if self.trainer is not None and self.trainer.world_size > 1:

            def gather(v: torch.Tensor) -> torch.Tensor:
                out = self.all_gather(v)
                assert isinstance(out, torch.Tensor)  # a tensor in, a tensor out
                return out.reshape(-1)

            cat = {k: gather(v) for k, v in cat.items()}
        # distributed samplers may repeat cases to even out ranks: keep each case once, in order
        idx = cat["case_index"].cpu().numpy()
        _, first = np.unique(idx, return_index=True)
        ranks = {p: cat[p].cpu().numpy()[first] for p in ("all", "seen_excluded")}
        self.last_ranks[split] = ranks
        metrics = summarise(ranks, self.ks, split)
        # the headline figure in the progress bar; every figure once in the logger (EpochCurve
        # writes the epoch's log line)
        shown = f"{split}_seen_excluded/ndcg@{self.ks[0]}"
        self.log_dict(
            {k: v for k, v in metrics.items() if k != shown}, prog_bar=False, sync_dist=False, rank_zero_only=False
        )
        if shown in metrics:
            self.log(shown, metrics[shown], prog_bar=True, sync_dist=False, rank_zero_only=False)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("valid", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("valid")

    def configure_optimizers(self) -> Any:
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        sparse: list[torch.nn.Parameter] = []
        sparse_weight = self.model.item_embedding.id_emb.weight if self.sparse_item_grad else None
        for name, p in self.model.named_parameters():
            if p is sparse_weight:
                sparse.append(p)
            else:
                (no_decay if p.dim() < 2 or "emb" in name or "bias" in name else decay).append(p)
        opt_cfg = self.optim_cfg
        groups = [{"params": decay, "weight_decay": opt_cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        opt: torch.optim.Optimizer
        if sparse:
            self._check_sparse_support()
            opt = SparseDenseAdam(sparse, groups, lr=opt_cfg.lr, betas=(0.9, 0.98))
        else:
            opt = torch.optim.AdamW(groups, lr=opt_cfg.lr, betas=(0.9, 0.98))
        if opt_cfg.lr_schedule == "constant" and not opt_cfg.warmup_steps:
            return opt
        warm, total = max(opt_cfg.warmup_steps, 0), max(self.max_steps, 1)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if opt_cfg.lr_schedule == "constant":
                return 1.0
            progress = min(1.0, (step - warm) / max(total - warm, 1))
            return 0.5 * (1.0 + float(np.cos(np.pi * progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _check_sparse_support(self) -> None:
        """The combinations a sparse id-embedding gradient cannot run in, named before training."""
        trainer = self._trainer
        if trainer is None:
            return
        if trainer.world_size > 1:
            raise ValueError(
                "optim.sparse_item_grad=true is not supported with data-parallel training (trainer=ddp, "
                "world size > 1): set optim.sparse_item_grad=false (the gathered rows still keep the "
                "step's activations flat in the catalogue)"
            )
        if trainer.gradient_clip_val:
            raise ValueError(
                "optim.sparse_item_grad=true cannot be combined with trainer.gradient_clip_val (torch's "
                "gradient clipping does not take sparse gradients): unset one of them"
            )
