"""A sampled-loss training step gathers only the item rows it reads (memory flat in the
catalogue): the rows equal the full table's, and the step gives the same loss and gradients as
the full-table step; the opt-in sparse id-embedding gradient trains through the real pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from journeyrec.models.losses import LossConfig
from journeyrec.models.sasrec import SASRec
from journeyrec.training.config import OptimConfig
from journeyrec.training.module import RecModule, local_ids
from journeyrec.training.optim import SparseDenseAdam

N_ITEMS = 40


def tiny_model(id_dropout: float = 0.0) -> SASRec:
    """SASRec with two attribute fields (one multi-code, rows with 0 to 3 codes) and cold items."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    codes = {"category": rng.integers(1, 6, (N_ITEMS + 1, 3)), "brand": rng.integers(0, 4, (N_ITEMS + 1, 1))}
    codes["category"][rng.random((N_ITEMS + 1, 3)) < 0.3] = 0
    for table in codes.values():
        table[0] = 0
    model = SASRec(
        N_ITEMS,
        d_model=8,
        n_blocks=1,
        n_heads=2,
        max_len=6,
        dropout=0.0,
        id_dropout=id_dropout,
        attributes={"category": (5, 3), "brand": (3, 1)},
    )
    model.item_embedding.set_codes(codes)
    model.set_known_items((rng.random(N_ITEMS + 1) < 0.8).astype(np.float32))
    return model


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(1, N_ITEMS + 1, (4, 7), generator=g)
    seq[0, :3] = 0  # left padding
    items, targets = seq[:, :-1], seq[:, 1:].clone()
    targets[items == 0] = 0
    mask = (targets != 0) & (items != 0)
    return {"items": items, "targets": targets, "target_index": mask.flatten().nonzero()[:, 0]}


def test_rows_equal_the_full_table():
    model = tiny_model()
    emb = model.item_embedding
    ids = torch.tensor([0, 2, 3, 17, N_ITEMS])
    for training in (False, True):  # id_dropout=0: the training table is the eval table
        model.train(training)
        assert torch.allclose(emb.rows(ids), emb()[ids], atol=1e-6)
    assert not emb.rows(ids)[0].any()  # padding row


def test_local_ids_renumber_consistently():
    a = torch.tensor([[0, 5, 9], [9, 2, 0]])
    ids, (la, none, lb) = local_ids(a, None, torch.tensor([2, 7]))
    assert ids.tolist() == [0, 2, 5, 7, 9] and none is None
    assert torch.equal(ids[la], a) and ids[lb].tolist() == [2, 7] and la[0, 0] == 0


def step_grads(loss: str, gather: bool, sparse: bool = False, negatives: str = "uniform") -> tuple[float, dict]:
    model = tiny_model()
    module = RecModule(
        model,
        LossConfig(name=loss, negatives=negatives, n_negatives=5),
        OptimConfig(sparse_item_grad=sparse),
        item_counts=np.arange(N_ITEMS + 1),
    )
    module.gather_rows = gather
    model.train()
    torch.manual_seed(7)  # the same negatives: with dropout 0, the forward draws no random numbers
    value = module.training_step(batch(), 0)
    value.backward()
    grads = {
        n: p.grad.to_dense() if p.grad.is_sparse else p.grad for n, p in model.named_parameters() if p.grad is not None
    }
    return float(value), grads


@pytest.mark.parametrize(
    "loss,negatives",
    [("sampled_softmax", "uniform"), ("sampled_softmax", "mixed"), ("bce", "uniform"), ("gbce", "popularity")],
)
@pytest.mark.parametrize("sparse", [False, True])
def test_gathered_step_matches_the_full_table_step(loss, negatives, sparse):
    full_loss, full = step_grads(loss, gather=False, negatives=negatives)
    loss_value, gathered = step_grads(loss, gather=True, sparse=sparse, negatives=negatives)
    assert loss_value == pytest.approx(full_loss, rel=1e-5)
    assert set(gathered) == set(full)
    for name in full:
        assert torch.allclose(gathered[name], full[name], atol=1e-6), name
    assert full["encoder.items.id_emb.weight"].abs().sum() > 0  # the id embedding did get a gradient
    if sparse:
        model = tiny_model()
        module = RecModule(
            model, LossConfig(name=loss, negatives=negatives, n_negatives=5), OptimConfig(sparse_item_grad=True)
        )
        model.train()
        module.training_step(batch(), 0).backward()
        assert model.item_embedding.id_emb.weight.grad.is_sparse


def test_sparse_grad_needs_a_sampled_loss_and_the_optimizer_round_trips():
    with pytest.raises(ValueError, match="sparse_item_grad=true needs a sampled loss"):
        RecModule(tiny_model(), LossConfig(name="softmax"), OptimConfig(sparse_item_grad=True))
    model = tiny_model()
    module = RecModule(model, LossConfig(name="gbce", n_negatives=5), OptimConfig(sparse_item_grad=True))
    opt = module.configure_optimizers()
    assert isinstance(opt, SparseDenseAdam)
    model.train()
    module.training_step(batch(), 0).backward()
    before = model.item_embedding.id_emb.weight.detach().clone()
    opt.step()
    changed = (model.item_embedding.id_emb.weight != before).any(dim=1)
    assert changed.any() and not changed[0]  # rows of the step moved, padding did not
    state = opt.state_dict()
    fresh = RecModule(
        tiny_model(), LossConfig(name="gbce", n_negatives=5), OptimConfig(sparse_item_grad=True)
    ).configure_optimizers()
    fresh.load_state_dict(state)
    assert fresh._sparse.state is fresh.state and len(fresh.state) == len(opt.state)
    assert fresh._dense.param_groups[0] is fresh.param_groups[1]


def test_tiny_fit_with_sparse_item_grad(tmp_path):
    from conftest import train_tiny as run

    metrics, out = run(
        tmp_path,
        [
            "experiment=demo",
            "loss=gbce",
            "loss.n_negatives=16",
            "optim.sparse_item_grad=true",
            "model.attributes=[category,brand]",
            "model.n_blocks=1",
            "optim.lr_schedule=cosine",
        ],
    )
    curve = json.loads((out / "curve.json").read_text())
    losses = [row["train/loss"] for row in curve]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0]
    valid = [row["valid_seen_excluded/ndcg@10"] for row in curve]
    assert metrics["epochs"] == 2 and valid[1] > valid[0], valid  # it learns, not only runs
    with pytest.raises(ValueError, match="gradient_clip_val"):
        run(
            tmp_path / "clip",
            [
                "experiment=demo",
                "loss=gbce",
                "optim.sparse_item_grad=true",
                "trainer.gradient_clip_val=1.0",
                "model.n_blocks=1",
            ],
        )
