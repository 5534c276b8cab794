"""The shared sequence encoder: embeddings in, one hidden state per position out.

Read top to bottom:

1. item table = id embedding (+ attribute embeddings: category, brand, price bucket, tags; see
   :mod:`journeyrec.models.attributes`), one row per item, row 0 = padding, optionally a last
   row for the [MASK] token of masked-item models;
2. input = item row * sqrt(d) + learned position + per-position feature embeddings (event type,
   channel, time gap). Positions count back from the newest event (``from_end``: left padding
   never shifts them) or forward from the window's first item (``from_start``: a causal model then
   sees, at every training position, the same positions as at inference on that prefix). With
   ``relative`` (causal models) there is no position input; instead each head adds a learned bias
   for the distance query - key to its attention scores (shared by the blocks): recency-aware, and
   every training position is exactly its prefix at inference;
3. dropout -> pre-LayerNorm transformer blocks on ``scaled_dot_product_attention`` -> LayerNorm.
   With ``mixer="bsa"`` each block's residual branch mixes attention with a frequency filter
   (BSARec, Shin et al. AAAI 2024: low-pass + beta^2 * high-pass of the sequence): causal in a
   causal model (:class:`LowPass`), so that every position still reads only itself and its past;
   over the whole window in a bidirectional one, as BSARec itself filters.

Masking is causal (SASRec: position t sees positions <= t) or bidirectional (BERT4Rec); padding
keys are always masked. Which inputs are used is configuration (``features``, ``attributes``).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from journeyrec.models.attributes import ItemEmbedding
from journeyrec.models.dropout import Dropout, attention

__all__ = ["SequenceEncoder", "Block", "LowPass", "FeatureEmbeddings", "init_weights", "low_pass_kernel"]


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
POSITIONS = ("from_end", "from_start", "relative")
MIXERS = ("attention", "bsa")


def low_pass_kernel(max_len: int, cutoff: int) -> torch.Tensor:
    """[max_len] weight of each lag 0..max_len-1 in the low-pass that keeps the ``cutoff`` lowest
    rFFT frequencies (the constant one included) of a ``max_len`` window, read at the window's
    newest position: ``irfft(rfft(x) with bins >= cutoff zeroed)[-1] = sum_lag kernel[lag] *
    x[-1 - lag]``. BSARec's ``c`` corresponds to ``cutoff = c // 2 + 1``."""
    if not 1 <= cutoff <= max_len // 2 + 1:
        raise ValueError(f"filter_cutoff must be in 1..{max_len // 2 + 1} (max_len {max_len}), got {cutoff}")
    lag = torch.arange(max_len, dtype=torch.float64)
    bins = torch.arange(1, cutoff, dtype=torch.float64)
    # every bin above 0 stands for itself and its mirror max_len - k, except an even length's Nyquist bin
    twice = torch.where(2 * bins == max_len, 1.0, 2.0)
    waves = torch.cos(2 * math.pi * bins[:, None] * lag[None, :] / max_len)
    return ((1.0 + (twice[:, None] * waves).sum(0)) / max_len).float()


class LowPass(nn.Module):
    """BSARec's frequency filter, ``low + beta^2 * (x - low)`` with ``low`` the low-pass of the
    sequence (:func:`low_pass_kernel`, padding read as zeros) and ``beta`` learned per dimension.

    Causal (the default): position t gets what BSARec's filter gives at the newest position of
    the window ending at t. BSARec filters the whole padded window at once, which lets earlier
    positions read later ones; it trains on the newest position only, where that cannot happen,
    but training every position (as SASRec does) must not see the next item, hence one kernel per
    lag. With ``causal=False`` every position reads the whole window (weight by distance, the
    kernel being symmetric), BSARec's own filter: for models trained on the newest position only
    (``loss.targets=newest``). Both give the same newest position."""

    weights: torch.Tensor

    def __init__(self, d_model: int, max_len: int, cutoff: int, causal: bool = True) -> None:
        super().__init__()
        kernel = low_pass_kernel(max_len, cutoff)
        t = torch.arange(max_len)
        lag = t[:, None] - t[None, :]
        if causal:
            weights = torch.where(lag >= 0, kernel[lag.clamp(min=0)], 0.0)  # lower triangular
        else:
            weights = kernel[lag.abs()]  # symmetric
        # [max_len, max_len], rebuilt from hparams; a weight depends on the lag only, so a shorter
        # window's matrix is its bottom-right corner (built once: serving encodes a window per request)
        self.register_buffer("weights", weights, persistent=False)
        self.sqrt_beta = nn.Parameter(torch.randn(d_model))
        self.causal = causal

    def forward(self, h: torch.Tensor, keep: torch.Tensor | None, last_only: bool = False) -> torch.Tensor:
        """``h`` [B, L, D]; ``keep`` [B, L] True at real items (None: no padding); ``last_only``:
        the newest position only, [B, 1, D]."""
        if keep is not None:
            h = h * keep[..., None]
        n, m = h.shape[1], self.weights.shape[0]
        weights = self.weights.narrow(0, m - (1 if last_only else n), 1 if last_only else n).narrow(1, m - n, n)
        weights = weights.to(h.dtype)
        h_q = h[:, -1:] if last_only else h
        low = weights @ h
        return low + self.sqrt_beta.square() * (h_q - low)


def init_weights(m: nn.Module) -> None:
    """Small normal init (std 0.02) for linear and embedding layers; padding rows stay zero."""
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
        if m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)); x + mlp(LN(x)). The feed-forward width is
    ``ffn_mult * d_model``. With a ``low_pass`` (:class:`LowPass`) the first branch is
    ``(1 - filter_alpha) * attn(LN(x)) + filter_alpha * low_pass(LN(x))`` (BSARec's mix)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        ffn_mult: int = 4,
        activation: str = "gelu",
        low_pass: LowPass | None = None,
        filter_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model),
            ACTIVATIONS[activation](),
            Dropout(dropout),
            nn.Linear(ffn_mult * d_model, d_model),
        )
        self.dropout = dropout
        self.resid_drop = Dropout(dropout)
        self.low_pass = low_pass
        self.filter_alpha = float(filter_alpha)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool = False,
        last_only: bool = False,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``attn_mask`` None with ``is_causal``: plain causal attention (sequences without padding).
        ``last_only``: return only the newest position, [B, 1, D] -- its query attends to every
        key, so the other positions' queries, projections and MLP rows need not be computed (the
        last block of serving's session vector). ``keep`` [B, L]: True at real items, for the
        low-pass (None: no padding)."""
        b, length, d = x.shape
        h = self.n_heads
        normed = self.ln1(x)
        q, k, v = self.qkv(normed).split(d, dim=2)
        if last_only:
            q, x = q[:, -1:], x[:, -1:]
            if attn_mask is not None and attn_mask.shape[-2] > 1:
                attn_mask = attn_mask[..., -1:, :]
        n_q = q.shape[1]
        q = q.reshape(b, n_q, h, d // h).transpose(1, 2)
        k, v = (t.view(b, length, h, d // h).transpose(1, 2) for t in (k, v))
        y = attention(q, k, v, attn_mask, is_causal, self.dropout if self.training else 0.0)
        y = self.proj(y.transpose(1, 2).reshape(b, n_q, d))
        if self.low_pass is not None:
            y = (1.0 - self.filter_alpha) * y + self.filter_alpha * self.low_pass(normed, keep, last_only)
        x = x + self.resid_drop(y)
        return x + self.resid_drop(self.mlp(self.ln2(x)))


class FeatureEmbeddings(nn.Module):
    """Sum of per-position categorical feature embeddings (code 0 = padding -> zero vector)."""

    def __init__(self, features: Mapping[str, int] | None, d_model: int) -> None:
        super().__init__()
        self.emb = nn.ModuleDict(
            {name: nn.Embedding(size + 1, d_model, padding_idx=0) for name, size in (features or {}).items()}
        )

    def forward(self, x: torch.Tensor, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        for name, emb in self.emb.items():
            if name not in features:
                raise KeyError(f"the model reads feature '{name}' but the batch has only {sorted(features)}")
            x = x + emb(features[name])
        return x


class SequenceEncoder(nn.Module):
    """Item sequence (+ per-position features) -> hidden states [B, L, D].

    Args:
        n_items: number of real items; row 0 of the item table is padding and, with
            ``mask_token``, row ``n_items + 1`` is the [MASK] token (``self.mask_id``).
        features: per-position inputs and their vocabulary sizes (code 0 = padding), e.g.
            ``{"event_type": 9, "channel": 6, "time_gap": 10}``; their embeddings are added.
        attributes: item attribute fields ``{field: (vocabulary size, width)}`` (see
            :class:`journeyrec.models.attributes.ItemEmbedding`).
        id_dropout: training-time probability of hiding an item's id embedding.
        mixer: ``attention`` or ``bsa`` (attention mixed with :class:`LowPass`, weight
            ``filter_alpha``, keeping the ``filter_cutoff`` lowest frequencies).
    """

    def __init__(
        self,
        n_items: int,
        d_model: int = 64,
        n_blocks: int = 2,
        n_heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        causal: bool = True,
        features: Mapping[str, int] | None = None,
        mask_token: bool = False,
        attributes: Mapping[str, Sequence[int]] | None = None,
        id_dropout: float = 0.0,
        ffn_mult: int = 4,
        activation: str = "gelu",
        positions: str = "from_end",
        mixer: str = "attention",
        filter_alpha: float = 0.7,
        filter_cutoff: int = 3,
    ) -> None:
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {list(MIXERS)}, got {mixer!r}")
        if mixer == "bsa" and not 0.0 <= filter_alpha <= 1.0:
            raise ValueError(f"filter_alpha must be in [0, 1], got {filter_alpha}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {list(POSITIONS)}, got {positions!r}")
        if positions == "relative" and not causal:
            raise ValueError("positions=relative needs a causal model (its bias is indexed by how far back a key is)")
        self.positions = positions
        self.n_items = n_items
        self.max_len = max_len
        self.causal = causal
        self.d_model = d_model
        self.mask_id = n_items + 1 if mask_token else None
        self.items = ItemEmbedding(n_items + 1 + int(mask_token), d_model, attributes, id_dropout)
        self.pos_emb = None if positions == "relative" else nn.Embedding(max_len, d_model)
        # relative: [heads, distance 0..max_len-1] score bias, zero at init (no position preference)
        self.rel_bias = nn.Parameter(torch.zeros(n_heads, max_len)) if positions == "relative" else None
        self.features = FeatureEmbeddings(features, d_model)
        self.emb_drop = Dropout(dropout)
        self.mixer = mixer
        self.blocks = nn.ModuleList(
            [
                Block(
                    d_model,
                    n_heads,
                    dropout,
                    ffn_mult,
                    activation,
                    LowPass(d_model, max_len, filter_cutoff, causal) if mixer == "bsa" else None,
                    filter_alpha,
                )
                for _ in range(n_blocks)
            ]
        )
        self.ln_f = nn.LayerNorm(d_model)
        self.apply(init_weights)

    def attention_mask(self, items: torch.Tensor) -> torch.Tensor:
        """Boolean [B, 1, L, L] mask, True = may attend; with relative positions the float
        [B, H, L, L] score bias instead (-inf where not allowed). Every position may attend to
        itself so that fully padded rows stay finite (their outputs are never used)."""
        length = items.shape[1]
        keys = (items != 0)[:, None, None, :]
        eye = torch.eye(length, dtype=torch.bool, device=items.device)
        if self.causal:
            allowed = torch.tril(torch.ones(length, length, dtype=torch.bool, device=items.device))
            allowed = (keys & allowed) | eye
        else:
            allowed = keys | eye
        if self.rel_bias is None:
            return allowed
        return self._relative_bias(self.rel_bias, length, items.device).masked_fill(~allowed, float("-inf"))

    @staticmethod
    def _relative_bias(rel_bias: torch.Tensor, length: int, device: torch.device) -> torch.Tensor:
        """[1, H, L, L] bias of query t for key j: ``rel_bias[:, t - j]`` (t - j < 0, the future,
        is clamped to 0: the caller masks it)."""
        t = torch.arange(length, device=device)
        return rel_bias[:, (t[:, None] - t[None, :]).clamp(min=0)][None]

    def item_table(self) -> torch.Tensor:
        """[n_items + 1 (+1 mask), D] item rows (id + attributes); row 0 is zero."""
        return self.items()

    def embed(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor], table: torch.Tensor | None = None
    ) -> torch.Tensor:
        length = items.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        table = self.item_table() if table is None else table
        x = F.embedding(items, table) * math.sqrt(self.d_model)
        if self.pos_emb is None:  # positions=relative: a bias in the attention scores instead
            pass
        elif self.positions == "from_end":  # the newest event is always position max_len - 1
            x = x + self.pos_emb(torch.arange(self.max_len - length, self.max_len, device=items.device))[None]
        elif self.positions == "from_start":  # the window's first real item is position 0, whatever the padding
            x = x + self.pos_emb(((items != 0).cumsum(1) - 1).clamp_(min=0))
        x = self.features(x, features)
        return self.emb_drop(x * (items != 0)[..., None])

    def forward(
        self,
        items: torch.Tensor,
        features: Mapping[str, torch.Tensor] | None = None,
        table: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Hidden states [B, L, D]; with ``last_only`` the newest position's only, [B, D].

        ``last_only`` is what a session vector needs: the last block then computes one query per
        sequence instead of L (its keys and values still come from every position), which is
        where evaluation and export spend their encoder time."""
        x = self.embed(items, features or {}, table)
        mask = self.attention_mask(items)
        keep = items != 0 if self.mixer == "bsa" else None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == last, keep=keep)
        x = self.ln_f(x)
        return x[:, -1] if last_only else x

    def last_hidden_unpadded(
        self, items: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``forward(items)[:, -1]`` for sequences WITHOUT padding (every position a real item),
        computed with less work: no attention mask is built (causal attention is SDPA's
        ``is_causal``; bidirectional needs none), and the last block computes the newest position
        only. Serving encodes one session at a time, so it can trim the padding and use this."""
        x = self.embed(items, features or {}, table)
        last = len(self.blocks) - 1
        bias = self.attention_mask(items) if self.rel_bias is not None else None  # no padding: causal + bias
        for i, block in enumerate(self.blocks):
            x = block(x, bias, is_causal=bias is None and self.causal and i < last, last_only=i == last)
        return self.ln_f(x)[:, -1]
