"""The GPU-path switches, exercised on CPU (this machine has no GPU): bf16 autocast
(``trainer.precision=bf16-mixed``), ``trainer.compile`` (torch.compile of the model's forward) and
the host-computed packing of target positions that keeps the training step free of host syncs.
Tiny demo shop, one epoch, in-process ``train`` so the config-to-Trainer wiring is what runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from journeyrec.config import compose_cli

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.options.n_customers=150",
    "model.d_model=16",
    "model.n_blocks=1",
    "model.dropout=0",
    "trainer.max_epochs=3",
    "trainer.min_epochs=3",
    "trainer.patience=10",
    "trainer.num_threads=1",
    "trainer.progress_bar=false",
    "logger=none",
    "export.enabled=false",
    "eval.bootstrap=0",
    "eval.beyond_accuracy=false",
    "show_samples=0",
]


def _train(out: Path, *overrides: str) -> tuple[dict[str, float], list[dict[str, float]]]:
    from journeyrec.training.run import train

    cfg = compose_cli(str(ROOT / "configs"), "train", [*TINY, *overrides, f"output_dir={out}"])
    metrics = train(cfg).metrics
    return metrics, json.loads((out / "curve.json").read_text())


def test_target_index_packs_like_the_boolean_mask():
    from journeyrec.data.datasets import TrainWindows
    from journeyrec.data.prepare import prepare

    cfg = compose_cli(str(ROOT / "configs"), "train", TINY)
    prepared = prepare(cfg.data)
    ds = TrainWindows(prepared.sequences, prepared.split.train_ends, max_len=20)
    batch = ds.__getitems__(list(range(min(len(ds), 40))))
    mask = (batch["targets"] != 0) & (batch["items"] != 0)
    hidden = torch.randn(*batch["items"].shape, 4)
    packed = hidden.flatten(0, 1).index_select(0, batch["target_index"])
    assert torch.equal(packed, hidden[mask]) and int(mask.sum()) > 0


def learned(curve: list[dict[str, float]]) -> None:
    """Training learned: the loss fell every epoch and validation ranks the targets better at the
    end than after the first epoch."""
    losses = [row["train/loss"] for row in curve]
    assert all(math.isfinite(x) for x in losses) and all(b < a for a, b in zip(losses, losses[1:])), losses
    valid = [row["valid_seen_excluded/ndcg@10"] for row in curve]
    assert valid[-1] > valid[0], valid


def test_bf16_mixed_trains_on_cpu(tmp_path):
    """bf16 autocast really runs (the loss differs from float32 by bf16 rounding), learns, and
    ends where float32 ends. Small batches, so the epoch's loss includes steps after the first
    update: at the initial weights the logits are so small that bf16 rounding can vanish from a
    float32 loss."""
    m32, c32 = _train(tmp_path / "fp32", "data.batch_size=16")
    m16, c16 = _train(tmp_path / "bf16", "data.batch_size=16", "trainer.precision=bf16-mixed")
    l32, l16 = c32[-1]["train/loss"], c16[-1]["train/loss"]
    assert l16 != l32 and l16 == pytest.approx(l32, rel=0.05)
    learned(c16)
    assert m16["valid_seen_excluded/ndcg@10"] == pytest.approx(m32["valid_seen_excluded/ndcg@10"], rel=0.25)


@pytest.mark.slow
def test_compile_flag_trains_a_compiled_model(tmp_path):
    """``trainer.compile=true`` compiles the forward (dynamo captures graphs) and the run trains;
    evaluation and the state dict use the plain module (same keys as an uncompiled run)."""
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    metrics, curve = _train(tmp_path / "compiled", "trainer.compile=true")
    assert counters["stats"]["unique_graphs"] > 0
    learned(curve)
    state = torch.load(tmp_path / "compiled" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state) and any(k.startswith("model.") for k in state)
    torch._dynamo.reset()


def test_bf16_autocast_trains_an_item_table_with_attribute_means():
    """s3rec_best's item table (id + mean tag embedding, a sparse product) under bf16 autocast:
    its backward used to fail on mixed dtypes; the attribute part stays float32, so the
    gradients equal those computed without autocast."""
    from journeyrec.models.attributes import ItemEmbedding

    torch.manual_seed(0)
    codes = torch.randint(0, 9, (41, 3))
    codes[0] = 0
    emb = ItemEmbedding(41, 8, attributes={"tags": (8, 3)})
    emb.set_codes({"tags": codes.numpy()})
    h = torch.randn(5, 8)
    grads = []
    for autocast in (False, True):
        emb.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            table = emb()
        (table @ h.T).square().mean().backward()
        grads.append(emb.attr_emb["tags"].weight.grad.clone())
    assert table.dtype == torch.float32 and grads[1].abs().sum() > 0
    assert torch.equal(grads[0], grads[1])
