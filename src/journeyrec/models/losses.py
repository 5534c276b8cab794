"""Training losses over packed target positions, and the negative samplers they draw from.

Padding positions are dropped before anything catalogue-sized is computed; every loss takes
``hidden [P, D]``, ``item_vectors [N + 1, D]`` (row 0 padding), ``targets [P]`` in 1..N and
optional per-position ``weights [P]`` (e.g. a purchase target weighs more than a view) and
returns the weighted mean ``sum_p w_p loss_p / sum_p w_p``.

* ``softmax``: full cross-entropy over all N items (the strongest objective for SASRec), with
  optional label smoothing. Computed by :class:`ChunkedSoftmaxCE`, which does forward and
  backward together a few hundred positions at a time, so the [positions x items] logits never
  leave the cache: on a CPU with little memory bandwidth this is ~1.6x faster than
  ``F.cross_entropy`` on materialised logits, with identical loss and gradients (tested).
* ``sampled_softmax``: cross-entropy over the positive and a set of negatives shared by the
  batch, with the logQ correction (subtract log of each candidate's expected count among the
  candidates) so that the sampled objective estimates the full softmax; accidental hits (a
  negative equal to the positive) are removed.
* ``bce``: binary cross-entropy, positive vs ``n_negatives`` negatives per position (the
  original SASRec objective; cheap, weaker).
* ``gbce``: generalised BCE (gSASRec, Petrov & Macdonald 2023): the positive's probability is
  raised to the power beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (N - 1), which
  counteracts the overconfidence that negative sampling causes; t = ``gbce_t``.

``exclude_seen`` (full softmax): each position's softmax leaves out the items the user already
had (never the target), matching seen-excluded evaluation and serving with history excluded. Use it
when repeats are rare: the S3-Rec files never repeat an item within a user.

``seen_bias`` (full softmax, a model's learned repeat bias b): the model scores the items the user
already had with + b. b is fitted by maximum likelihood of that biased softmax with the
representation held fixed (stop-gradient): the returned loss and the gradients of hidden states
and item vectors are those of the plain softmax, and b gets the gradient of the biased one,
computed in the same chunked pass. So the bias calibrates how likely a repeat is (positive
where items come back, strongly negative where they never do) without changing what the
embeddings learn: a bias that shapes the embeddings as well lowered seen-excluded NDCG@10 on
Beauty's validation split (0.0620 against 0.0640 at best).

The two combine: with ``exclude_seen`` and a ``seen_bias`` the representation is trained on the
softmax without the earlier items (the loss, h's and W's gradients are exclude_seen's) while b
is still fitted on the plain biased softmax, so seen items keep a calibrated score (the
nothing-excluded protocol, serving with repeats allowed) although the embeddings never learned
to push them down.

Negatives (``negatives``): ``uniform`` or ``popularity`` (proportional to (count + 1) ** alpha)
sampled with replacement; ``in_batch`` (the other positions' targets, corrected by their target
frequency); ``mixed`` (in-batch plus sampled, corrected by the mixture's expected counts). For
bce / gbce, in-batch candidates are not available (they need per-position negatives).
Randomness comes from torch's global generator, so a seeded run is reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from journeyrec.models.config import LossConfig

__all__ = [
    "LOSSES",
    "NEGATIVES",
    "LossConfig",
    "ChunkedSoftmaxCE",
    "NegativeSampler",
    "RecLoss",
    "softmax_loss",
    "sampled_softmax_loss",
    "bce_loss",
    "gbce_loss",
    "compute_loss",
    "window_mask",
    "window_pairs",
]

LOSSES = ("softmax", "sampled_softmax", "bce", "gbce")
NEGATIVES = ("uniform", "popularity", "in_batch", "mixed")
_CHUNK_ELEMENTS = 1 << 21  # logits per chunk (8 MiB in float32)


def window_mask(ids: torch.Tensor, n_cols: int) -> torch.Tensor:
    """[B, n_cols] bool, True at every id of each row of ``ids`` [B, L] (each item once however
    often it occurs). Column 0 (padding) is always False; ids >= n_cols (special tokens such as
    [MASK]) mark nothing. The definition of "items already in the window" of the model's biased
    scores; :func:`window_columns` is the same set in sparse form, for the repeat-bias loss."""
    mask = torch.zeros(ids.shape[0], n_cols, dtype=torch.bool, device=ids.device)
    mask.scatter_(1, ids.masked_fill(ids >= n_cols, 0), True)
    mask[:, 0] = False
    return mask


def window_pairs(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The items of :func:`window_mask` as (row, item) pairs, each once per row, padding left out
    (ids beyond a catalogue, such as [MASK], are for the consumer to drop): the same set in the
    sparse form the tiled ranking adds a bonus to."""
    real = ids != 0
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(ids)[real]
    width = int(ids.max()) + 1 if ids.numel() else 1
    key = torch.unique(rows * width + ids[real])
    return key // width, key % width


def window_columns(ids: torch.Tensor, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The items of :func:`window_mask` as [B, L] logit columns (item id - 1) and a validity mask
    (False for padding, special tokens and second occurrences): the same set, kept sparse, so a
    loss can read and write the few seen entries of a [B, n_items] buffer instead of building a
    dense mask of the whole catalogue for every position."""
    srt = ids.sort(dim=1).values
    valid = (srt > 0) & (srt <= n_items)
    valid[:, 1:] &= srt[:, 1:] != srt[:, :-1]
    return (srt - 1).clamp_(0, max(n_items - 1, 0)), valid


class ChunkedSoftmaxCE(torch.autograd.Function):
    """sum_p w_p CE_eps(h_p @ W[1:].T, t_p - 1) / sum_p w_p, gradients computed in the forward
    pass, chunk by chunk. CE_eps is cross-entropy against the label-smoothed target
    (1 - eps) onehot + eps / N."""

    @staticmethod
    def forward(
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        pos_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        exclude: torch.Tensor | None = None,
        seen_bias: torch.Tensor | None = None,
        drop_seen: bool = False,
    ) -> torch.Tensor:
        # float32 throughout, autocast (precision=bf16-mixed) included: the softmax normaliser
        # sums N exponentials, which bf16's 8-bit mantissa cannot hold, and the in-place
        # gradient accumulation needs one dtype
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return ChunkedSoftmaxCE._forward(
                ctx, hidden, weight, targets, pos_weights, label_smoothing, exclude, seen_bias, drop_seen
            )

    @staticmethod
    def _forward(
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        pos_weights: torch.Tensor | None,
        label_smoothing: float,
        exclude: torch.Tensor | None,
        seen_bias: torch.Tensor | None = None,
        drop_seen: bool = False,
    ) -> torch.Tensor:
        """``exclude`` [P, S] with ``seen_bias`` None: those items leave the softmax. With a
        0-dim ``seen_bias`` b, b's gradient is that of the softmax whose seen logits (target
        included) get + b, hidden and weight held fixed; the loss (and h's and W's gradients) is
        the plain one, or with ``drop_seen`` the one without the seen items (never the target)."""
        h = hidden.float()
        w = weight[1:].float()
        n_pos, n_items = h.shape[0], w.shape[0]
        eps = float(label_smoothing)
        chunk = max(1, _CHUNK_ELEMENTS // max(n_items, 1))
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros_like(weight, dtype=torch.float32)
        total = h.new_zeros(())
        pw = None if pos_weights is None else pos_weights.float()
        biased = seen_bias is not None and exclude is not None
        eb = seen_bias.detach().float().exp() if seen_bias is not None and exclude is not None else None
        grad_b = h.new_zeros(())
        for lo in range(0, n_pos, chunk):
            hc = h[lo : lo + chunk]
            tc = targets[lo : lo + chunk] - 1
            rows = torch.arange(hc.shape[0], device=h.device)
            logits = hc @ w.T
            if eb is not None and exclude is not None:  # biased: the user's items (each once) as logit columns
                seen_cols, seen_ok = window_columns(exclude[lo : lo + chunk], n_items)
            target_logit = logits[rows, tc]
            if exclude is not None and not biased:  # drop excluded candidates (never the target) from the softmax
                ex = exclude[lo : lo + chunk]
                ex = torch.where((ex > 0) & (ex != tc[:, None] + 1), ex - 1, tc[:, None])
                logits.scatter_(1, ex, float("-inf"))
                logits[rows, tc] = target_logit
            mean_logit = logits.mean(dim=1) if eps else None
            peak = logits.amax(dim=1, keepdim=True)
            expd = logits.sub_(peak).exp_()  # in place: one buffer per chunk, few passes over it
            norm = expd.sum(dim=1, keepdim=True)
            if eb is not None:
                # biased softmax from the plain one: its normaliser is norm + (e^b - 1) * S with
                # S the seen items' share of norm; d CE_b / db = P_b(seen) - [target is seen]
                mass = (expd.gather(1, seen_cols) * seen_ok).sum(dim=1)
                is_target = seen_ok & (seen_cols == tc[:, None])
                d_b = eb * mass / (norm[:, 0] + (eb - 1.0) * mass) - is_target.any(dim=1).float()
                grad_b = grad_b + (d_b.sum() if pw is None else (d_b * pw[lo : lo + chunk]).sum())
                if drop_seen:  # now the representation's softmax: without the seen items, target kept
                    drop = seen_ok & ~is_target
                    # entries not dropped rewrite the target's own value, so no write races a zero
                    expd.scatter_(
                        1, torch.where(drop, seen_cols, tc[:, None]), torch.where(drop, 0.0, expd[rows, tc][:, None])
                    )
                    norm = expd.sum(dim=1, keepdim=True)
            loss = peak[:, 0] + norm[:, 0].log() - (1.0 - eps) * target_logit
            if mean_logit is not None:  # eps > 0
                loss = loss - eps * mean_logit
            # d CE / d logits = expd / norm - smoothed onehot; the division by norm is applied to
            # the [chunk, D] factors of the two matmuls instead of the [chunk, N] buffer
            expd[rows, tc] -= (1.0 - eps) * norm[:, 0]
            if eps:
                expd.sub_(norm * (eps / n_items))
            row_scale = norm.reciprocal()
            if pw is None:
                total = total + loss.sum()
            else:
                wc = pw[lo : lo + chunk]
                total = total + (loss * wc).sum()
                row_scale = row_scale * wc[:, None]
            grad_h[lo : lo + chunk] = (expd @ w) * row_scale
            grad_w[1:].addmm_(expd.T, hc * row_scale)
        scale = 1.0 / float(n_pos) if pw is None else pw.sum().clamp_min(1e-12).reciprocal()
        ctx.save_for_backward(grad_h.mul_(scale), grad_w.mul_(scale), grad_b * scale)
        ctx.dtypes = (hidden.dtype, weight.dtype, seen_bias.dtype if seen_bias is not None and biased else None)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        gb = None if b_dtype is None else (grad_b * grad_out).to(b_dtype)
        return (grad_h * grad_out).to(h_dtype), (grad_w * grad_out).to(w_dtype), None, None, None, None, gb, None


def _weighted_mean(per_position: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return per_position.mean()
    return (per_position * weights).sum() / weights.sum().clamp_min(1e-12)


def softmax_loss(
    hidden: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    exclude: torch.Tensor | None = None,
    seen_bias: torch.Tensor | None = None,
    drop_seen: bool | None = None,
) -> torch.Tensor:
    """Full softmax CE. hidden [P, D], item_vectors [N + 1, D] (row 0 padding), targets [P] in 1..N.

    ``exclude`` [P, S]: item ids (0 = none) removed from each position's softmax, e.g. the items
    the user already had (the target itself is never removed). With a 0-dim ``seen_bias`` they
    are not removed unless ``drop_seen``: the bias gets the gradient of the softmax that adds it
    to their logits, the representation held fixed (see the module docstring). ``drop_seen``
    defaults to "remove them when no bias is fitted"."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    drop = seen_bias is None if drop_seen is None else bool(drop_seen)
    if exclude is not None and label_smoothing and drop:
        raise ValueError("label smoothing spreads mass over every item: it cannot be combined with exclude_seen")
    if seen_bias is not None and exclude is None:
        raise ValueError("seen_bias needs the seen items (exclude=[P, S] item ids)")
    if seen_bias is None and exclude is not None and not drop:
        raise ValueError(
            "drop_seen=False without a seen_bias leaves nothing for the seen items to do: pass exclude=None"
        )
    return ChunkedSoftmaxCE.apply(hidden, item_vectors, targets, weights, label_smoothing, exclude, seen_bias, drop)


class NegativeSampler:
    """Draws negative item ids and knows each id's sampling probability (for logQ).

    ``counts`` [N + 1] are training target counts per item id (row 0 ignored); they define the
    popularity distribution and the in-batch candidates' probabilities.
    """

    def __init__(
        self, kind: str, n_items: int, counts: np.ndarray | torch.Tensor | None = None, alpha: float = 0.75
    ) -> None:
        if kind not in NEGATIVES:
            raise ValueError(f"unknown negatives '{kind}'; available: {list(NEGATIVES)}")
        self.kind = kind
        self.n_items = n_items
        c = (
            torch.zeros(n_items + 1)
            if counts is None
            else torch.as_tensor(np.asarray(counts), dtype=torch.float64).clone()
        )
        c[0] = 0.0
        self.target_freq = (c / c.sum().clamp_min(1.0)).float()  # in-batch: P(item is a target)
        pop = (c + 1.0) ** alpha
        pop[0] = 0.0
        self.pop = (pop / pop.sum()).float()
        self.uniform = torch.full((n_items + 1,), 1.0 / n_items)
        self.uniform[0] = 0.0

    @property
    def sampled_q(self) -> torch.Tensor:
        """Probabilities of the independently sampled negatives (uniform or popularity)."""
        return self.pop if self.kind == "popularity" else self.uniform

    def sample(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Ids drawn directly on ``device`` (no host-to-device copy, hence no host sync in a GPU
        training step; on CPU the draws are those of the CPU generator as before)."""
        n = int(np.prod(shape))
        if self.kind == "popularity":
            ids = torch.multinomial(self.to(device).pop, n, replacement=True)
        else:
            ids = torch.randint(1, self.n_items + 1, (n,), device=device)
        return ids.view(shape)

    def log_expected(self, ids: torch.Tensor, n_pos: int, n_negatives: int) -> torch.Tensor:
        """logQ: the log of each id's expected number of occurrences among a step's candidates
        (``n_pos`` in-batch targets and / or ``n_negatives`` draws), for the given ids only."""
        expected = torch.zeros(ids.shape, device=ids.device)
        if self.kind in ("in_batch", "mixed"):
            expected = expected + n_pos * self.target_freq[ids]
        if self.kind != "in_batch":
            expected = expected + n_negatives * self.sampled_q[ids]
        return expected.clamp_min(1e-30).log()

    def to(self, device: torch.device) -> NegativeSampler:
        """Move the probability tables to ``device`` (once; later calls are free)."""
        if self.uniform.device != torch.device(device):
            for name in ("target_freq", "pop", "uniform"):
                setattr(self, name, getattr(self, name).to(device))
        return self


def sampled_softmax_loss(
    hidden: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    sampler: NegativeSampler,
    n_negatives: int,
    weights: torch.Tensor | None = None,
    logq: bool = True,
    negatives: torch.Tensor | None = None,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE over [positive, candidates]: candidates are shared by all positions of the batch.

    ``negatives`` [n_negatives]: drawn beforehand (:meth:`RecLoss.draw_negatives`) instead of here.
    ``ids``: the item id of each row of ``item_vectors`` when it holds only a step's rows
    (targets and negatives then index those rows); None: row i is item i."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    device = hidden.device
    parts = []
    n_pos = targets.shape[0]
    if sampler.kind in ("in_batch", "mixed"):
        parts.append(targets)
    if sampler.kind != "in_batch":
        parts.append(sampler.sample((n_negatives,), device) if negatives is None else negatives)
    cand = torch.cat(parts)
    logits = hidden @ item_vectors[cand].T  # [P, C]
    pos = (hidden * item_vectors[targets]).sum(-1)
    if logq:
        sampler.to(device)  # the tables stay on the device: no per-step copy
        item_id = (lambda rows: rows) if ids is None else (lambda rows: ids[rows])
        logits = logits - sampler.log_expected(item_id(cand), n_pos, n_negatives)[None, :]
        pos = pos - sampler.log_expected(item_id(targets), n_pos, n_negatives)
    logits = logits.masked_fill(cand[None, :] == targets[:, None], float("-inf"))  # accidental hits
    all_logits = torch.cat([pos[:, None], logits], dim=1)
    per = torch.logsumexp(all_logits, dim=1) - pos
    return _weighted_mean(per, weights)


def _binary_terms(
    hidden: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    sampler: NegativeSampler,
    n_negatives: int,
    negatives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if sampler.kind in ("in_batch", "mixed"):
        raise ValueError("bce / gbce need per-position negatives: use negatives=uniform or popularity")
    neg = sampler.sample((targets.shape[0], n_negatives), hidden.device) if negatives is None else negatives
    pos_logit = (hidden * item_vectors[targets]).sum(-1)
    neg_logit = torch.einsum("pd,pkd->pk", hidden, item_vectors[neg])
    valid = (neg != targets[:, None]).float()  # drop accidental hits
    return pos_logit, neg_logit, valid


def bce_loss(
    hidden: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    n_negatives: int = 1,
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
    sampler: NegativeSampler | None = None,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE: -log s(pos) - mean_k log(1 - s(neg_k)) per position (``generator``: uniform
    negatives from a private generator, for tests; ``negatives`` [P, k]: drawn beforehand,
    as rows of ``item_vectors``)."""
    if generator is not None:
        n_items = item_vectors.shape[0] - 1
        neg = torch.randint(1, n_items + 1, (targets.shape[0], n_negatives), device=targets.device, generator=generator)
        pos_logit = (hidden * item_vectors[targets]).sum(-1)
        neg_logit = torch.einsum("pd,pkd->pk", hidden, item_vectors[neg])
        valid = (neg != targets[:, None]).float()
    else:
        sampler = sampler or NegativeSampler("uniform", item_vectors.shape[0] - 1)
        pos_logit, neg_logit, valid = _binary_terms(hidden, item_vectors, targets, sampler, n_negatives, negatives)
    per = F.softplus(-pos_logit) + (F.softplus(neg_logit) * valid).sum(1) / valid.sum(1).clamp_min(1.0)
    return _weighted_mean(per, weights)


def gbce_loss(
    hidden: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    sampler: NegativeSampler,
    n_negatives: int,
    t: float = 0.75,
    weights: torch.Tensor | None = None,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """gBCE: (-beta log s(pos) - sum_k log(1 - s(neg_k))) / (k + 1) per position (``negatives``
    as for :func:`bce_loss`; the catalogue size N comes from the sampler, since ``item_vectors``
    may hold only the step's rows)."""
    alpha = n_negatives / max(sampler.n_items - 1, 1)
    beta = alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    pos_logit, neg_logit, valid = _binary_terms(hidden, item_vectors, targets, sampler, n_negatives, negatives)
    per = (beta * F.softplus(-pos_logit) + (F.softplus(neg_logit) * valid).sum(1)) / (n_negatives + 1)
    return _weighted_mean(per, weights)


class RecLoss:
    """A configured loss: ``loss(hidden, item_vectors, targets, weights)``."""

    def __init__(self, cfg: LossConfig, n_items: int, counts: np.ndarray | None = None) -> None:
        if cfg.name not in LOSSES:
            raise ValueError(f"unknown loss '{cfg.name}'; available: {list(LOSSES)}")
        if cfg.exclude_seen and cfg.name != "softmax":
            raise ValueError("exclude_seen is implemented for loss=softmax (full softmax) only")
        self.cfg = cfg
        self.sampler = NegativeSampler(cfg.negatives, n_items, counts, cfg.pop_alpha)

    @property
    def samples(self) -> bool:
        """True for the losses that read only a step's rows of the item table (targets and
        negatives), so a training step can gather those rows instead of building the table."""
        return self.cfg.name != "softmax"

    def draw_negatives(self, n_pos: int, device: torch.device) -> torch.Tensor | None:
        """The item ids this loss would draw for ``n_pos`` positions, drawn up front so the step
        knows every row it needs before the forward pass (None: the loss draws none)."""
        c = self.cfg
        if not self.samples or self.sampler.kind == "in_batch":
            return None
        shape = (c.n_negatives,) if c.name == "sampled_softmax" else (n_pos, c.n_negatives)
        return self.sampler.sample(shape, device)

    def __call__(
        self,
        hidden: torch.Tensor,
        item_vectors: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor | None = None,
        seen: torch.Tensor | None = None,
        seen_bias: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``seen`` [P, S]: each position's earlier items (0 = none), used when ``exclude_seen``
        or with ``seen_bias`` (a model's learned repeat bias, full softmax only). Sampled
        losses: ``negatives`` from :meth:`draw_negatives` and, when ``item_vectors`` holds only
        the step's rows, ``ids`` (item id per row; targets and negatives index rows)."""
        c = self.cfg
        if seen_bias is not None and c.name != "softmax":
            raise ValueError(f"model.repeat_bias is implemented for loss=softmax (full softmax) only, not {c.name}")
        if ids is not None and not self.samples:
            raise ValueError("the full softmax reads every item: pass the whole item table, not a step's rows")
        if c.name == "softmax":
            if seen_bias is not None:
                return softmax_loss(
                    hidden, item_vectors, targets, weights, c.label_smoothing, seen, seen_bias, drop_seen=c.exclude_seen
                )
            return softmax_loss(
                hidden, item_vectors, targets, weights, c.label_smoothing, seen if c.exclude_seen else None
            )
        if c.name == "sampled_softmax":
            return sampled_softmax_loss(
                hidden, item_vectors, targets, self.sampler, c.n_negatives, weights, c.logq, negatives, ids
            )
        if c.name == "bce":
            return bce_loss(
                hidden, item_vectors, targets, c.n_negatives, weights=weights, sampler=self.sampler, negatives=negatives
            )
        return gbce_loss(hidden, item_vectors, targets, self.sampler, c.n_negatives, c.gbce_t, weights, negatives)


def compute_loss(
    name: str, hidden: torch.Tensor, item_vectors: torch.Tensor, targets: torch.Tensor, n_negatives: int = 1
) -> torch.Tensor:
    """One-off loss with default settings (uniform negatives); training uses :class:`RecLoss`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; available: {list(LOSSES)}")
    return RecLoss(LossConfig(name=name, n_negatives=n_negatives), item_vectors.shape[0] - 1)(
        hidden, item_vectors, targets
    )
