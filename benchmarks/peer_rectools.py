"""Peer runner: RecTools' SASRec on an S3-Rec file, dumping embeddings after every epoch.

Runs inside the peer's own virtual environment (RecTools pins numpy<2 and an older Lightning),
never inside journeyrec's; ``benchmarks.train_vs_peer`` creates that environment and
calls this file as a script. It imports nothing from journeyrec: it only trains, times the
training (evaluation excluded) and writes, per epoch, the session vectors of the validation and
test inputs and the item vectors, so that journeyrec's metric function scores both sides.

RecTools' stock softmax loss materialises [batch, max_len, n_items] logits, padding included;
``PackedSoftmax`` evaluates the same cross-entropy on the real positions only (with unit
interaction weights, as here, the loss and gradients are identical), which is RecTools at its
best on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _replace_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``: readers never see a torn dump. (This runner
    imports nothing from journeyrec, whose ``journeyrec.io`` is the general version.)"""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
        np.savez(fh, **arrays)


def read_sequences(path: str) -> dict[str, list[str]]:
    seqs = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2:
                seqs[parts[0]] = parts[1:]
    return {u: s for u, s in seqs.items() if len(s) >= 3}


def interactions(seqs: dict[str, list[str]], drop_last: int) -> pd.DataFrame:
    """items[:len - drop_last] per user; the datetime is the position (order is all that counts)."""
    users, items, pos = [], [], []
    for u, s in seqs.items():
        kept = s[: len(s) - drop_last]
        users += [u] * len(kept)
        items += kept
        pos += range(len(kept))
    return pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "weight": 1.0,
            "datetime": pd.to_datetime(np.asarray(pos, dtype=np.int64), unit="s"),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="directory for per-epoch .npz files and run.json")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--stock-loss", action="store_true", help="RecTools' own softmax loss (padded logits)")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")

    import pytorch_lightning as pl
    import rectools
    import torch
    from pytorch_lightning.callbacks import Callback
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel
    from rectools.models.nn.transformers.lightning import TransformerLightningModule

    class PackedSoftmax(TransformerLightningModule):
        def training_step(self, batch, batch_idx):
            tm = self.torch_model
            item_embs = tm.item_model.get_all_embeddings()
            hidden = tm.encode_sessions(batch, item_embs)  # [B, L, D]
            y = batch["y"]
            real = y != 0
            logits = tm.similarity_module(hidden[real], item_embs) / self.logits_t
            loss = torch.nn.functional.cross_entropy(logits, y[real])
            self.log(self.train_loss_name, loss, on_step=False, on_epoch=True)
            return loss

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(a.seed, workers=True, verbose=False)
    seqs = read_sequences(a.data)
    users = np.asarray(list(seqs))
    train = Dataset.construct(interactions(seqs, 2))  # fit on items[:-2]
    test_in = Dataset.construct(interactions(seqs, 1))  # test input items[:-1]

    epoch_train_s: list[float] = []
    losses: list[float] = []
    state: dict = {}

    def dump(epoch: int) -> None:
        prep = model.data_preparator
        lm = model.lightning_model
        rows = {}
        for name, ds in (("valid", train), ("test", test_in)):
            if name not in state:
                rec = prep.transform_dataset_u2i(ds, users)
                state[name] = (prep.get_dataloader_recommend(rec, 1024), list(rec.user_id_map.external_ids))
            dl, order = state[name]
            u_emb, i_emb = lm._get_user_item_embeddings(dl, "cpu")  # noqa: SLF001 (embeddings = what recommend() scores)
            pos = {u: r for r, u in enumerate(order)}
            rows[name] = u_emb.numpy()[[pos[u] for u in users]]
        n_extra = prep.n_item_extra_tokens
        arrays = {"valid": rows["valid"], "test": rows["test"], "items": i_emb.numpy()[n_extra:]}
        _replace_atomically(out / f"epoch{epoch:03d}.npz", lambda tmp: _savez(tmp, arrays))
        lm.torch_model.train()

    class Timer(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.t = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            epoch_train_s.append(time.perf_counter() - self.t)
            v = trainer.callback_metrics.get("train_loss")
            losses.append(float(v) if v is not None else float("nan"))
            dump(len(epoch_train_s))

    def trainer():
        return pl.Trainer(
            max_epochs=a.epochs,
            min_epochs=a.epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Timer()],
        )

    kwargs = dict(
        n_blocks=a.blocks,
        n_heads=a.heads,
        n_factors=a.hidden,
        dropout_rate=a.dropout,
        session_max_len=a.max_len,
        loss="softmax",
        lr=a.lr,
        batch_size=a.batch_size,
        epochs=a.epochs,
        verbose=0,
        get_trainer_func=trainer,
        recommend_torch_device="cpu",
    )
    if not a.stock_loss:
        kwargs["lightning_module_type"] = PackedSoftmax
    model = SASRecModel(**kwargs)
    t0 = time.perf_counter()
    model.fit(train)
    wall = time.perf_counter() - t0
    known = [str(x) for x in model.data_preparator.get_known_item_ids()]
    meta = {
        "users": users.tolist(),
        "item_ids": known,
        "epoch_train_seconds": epoch_train_s,
        "train_loss": losses,
        "fit_wall_seconds_incl_dumps": wall,
        "n_train_sequences": int(len(seqs)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "packed_softmax": not a.stock_loss,
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "rectools": rectools.__version__,
            "torch": torch.__version__,
            "pytorch_lightning": pl.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "config": vars(a),
    }
    _replace_atomically(out / "run.json", lambda tmp: tmp.write_text(json.dumps(meta)))


if __name__ == "__main__":
    main()
