"""Exploration that learns: click-through of the served pipeline on the demo shop over rounds, with
the exploration slots chosen by the Thompson-sampling bandit, at random (trending or least shown),
or not explored at all; customers click as the demo shop's ground truth says they would.

    python -m benchmarks bandit --bundle .cache/bench/bandit/demo/bundle [--rounds 40] [--per-round 60] --save

The bundle is the demo shop trained for 2 epochs (``scripts/train.py experiment=demo
trainer.max_epochs=2 output_dir=.cache/bench/bandit/demo``). Per seed, every policy serves the same
customers in the same order through :class:`journeyrec.serving.service.Service` with an embedded
journey store (their generated journeys stored first), at ``home``, k slots, a share epsilon of them
explored. A customer clicks each shown item with the probability
:class:`journeyrec.data.synthetic.InterestModel` gives (the generator's own interest: category
affinity x the item's taste against the best of its category), drawn from one table of uniforms
per seed, so the three policies see the same customers and the same luck (common random numbers);
a click is posted as feedback (the bandit learns from it) and as a view (the journey grows).

Figures: CTR (expected clicks per shown item, from the ground-truth probabilities) per round, and
over the second half of the rounds with a 95% interval; the paired difference bandit - none and
bandit - random over the same (seed, round, slot) with its interval; cumulative regret against an
oracle that shows each customer the k unseen in-stock items they are most likely to click. With
``--save NAME`` the figure is written to docs/img/NAME.png as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3_600_000
POLICIES = ("bandit", "random", "none")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", default=".cache/bench/bandit/demo/bundle", help="a demo-shop bundle")
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--per-round", type=int, default=100, help="requests per round (customers drawn anew each round)")
    p.add_argument("--customers", type=int, default=800, help="customers taking part (their journeys are stored)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--epsilon", type=float, default=0.2)
    p.add_argument(
        "--prior-strength", type=float, default=None, help="rules.bandit_prior_strength (default: the rules')"
    )
    p.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    p.add_argument("--context", default="home")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=".cache/bench/bandit/runs")


def _ci(x: np.ndarray) -> list[float]:
    half = 1.96 * float(np.std(x, ddof=1)) / np.sqrt(len(x))
    return [round(float(np.mean(x)) - half, 5), round(float(np.mean(x)) + half, 5)]


def _journeys(cfg: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[list[dict]]]:
    """``n`` consenting customers with their generated events as intake records."""
    from journeyrec.data.synthetic import generate

    shop = generate(cfg)
    opted = set(shop.consent.filter(shop.consent.column("opted_out")).column("user_id").to_pylist())
    users = sorted(set(shop.events.column("user_id").to_pylist()) - opted)
    chosen = sorted(rng.choice(len(users), size=min(n, len(users)), replace=False).tolist())
    ids = [users[i] for i in chosen]
    ev = shop.events.filter(pc.is_in(shop.events.column("user_id"), value_set=pa.array(ids)))
    rows = ev.to_pylist()
    by_user: dict[str, list[dict]] = {u: [] for u in ids}
    for r in rows:
        rec = {
            "customer_id": r["user_id"],
            "session_id": r["session_id"],
            "event_type": r["event_type"],
            "channel": r["channel"],
            "timestamp": int(r["timestamp"].timestamp() * 1000),
        }
        for f in ("item_id", "price", "quantity"):
            if r.get(f) is not None:
                rec[f] = r[f]
        by_user[r["user_id"]].append(rec)
    return np.asarray([int(u[1:]) for u in ids]), [by_user[u] for u in ids]


def run(
    bundle: str,
    rounds: int,
    per_round: int,
    n_customers: int,
    k: int,
    epsilon: float,
    context: str,
    seeds: list[int],
    workdir: str,
    prior_strength: float | None = None,
    policies: tuple[str, ...] = POLICIES,
) -> list[dict]:
    from journeyrec.data.synthetic import DemoShopConfig, InterestModel
    from journeyrec.serving.recommender import Recommender
    from journeyrec.serving.request import Context, RecommendRequest
    from journeyrec.serving.service import Service
    from journeyrec.serving.settings import RulesConfig
    from journeyrec.serving.store import SQLiteStore

    base = Recommender.load(bundle)
    options = dict((base.train_config.get("data") or {}).get("options") or {})
    if (base.train_config.get("data") or {}).get("name") != "demo":
        raise ValueError(f"{bundle} was not trained on the demo shop: its customers' ground truth is unknown")
    cfg = DemoShopConfig(**options)
    model = InterestModel(cfg)
    row_of = {f"SKU{i + 1:05d}": i for i in range(len(model.cat.leaf))}
    in_stock = np.asarray(model.cat.in_stock, bool)
    t0 = int(base.stats.data_end_ms) + 24 * HOUR
    out_dir = Path(workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_policy: dict[str, dict[str, list[np.ndarray]]] = {
        p: {"ctr": [], "regret": [], "explored": []} for p in policies
    }
    for seed in seeds:
        rng = np.random.default_rng(seed)
        numbers, journeys = _journeys(cfg, n_customers, rng)
        who = rng.integers(0, len(numbers), size=(rounds, per_round))
        uniforms = rng.random((rounds, per_round, len(row_of)))
        p_all = {int(c): model.probability(np.asarray([c]), np.arange(len(row_of))[None, :])[0] for c in numbers}
        filled = Path(tempfile.mkdtemp(dir=out_dir)) / "journeys.sqlite"
        with SQLiteStore(filled) as store:  # every customer's generated journey, once per seed
            loader = Service(base, allow_demo_key=True, store=store)
            for j in range(0, len(journeys), 20):
                loader.intake([e for js in journeys[j : j + 20] for e in js], now_ms=t0)
        for policy in policies:
            path = filled.parent / f"{policy}.sqlite"
            shutil.copy(filled, path)
            rules = RulesConfig(
                epsilon=0.0 if policy == "none" else epsilon,
                exploration="bandit" if policy == "none" else policy,
                seed=seed,
            )
            if prior_strength is not None:
                rules = dataclasses.replace(rules, bandit_prior_strength=prior_strength)
            rec = Recommender.load(bundle, rules=rules)
            with SQLiteStore(path) as store:
                service = Service(rec, allow_demo_key=True, store=store)
                seen = {
                    int(c): {row_of[e["item_id"]] for e in js if e.get("item_id") in row_of}
                    for c, js in zip(numbers, journeys)
                }
                ctr = np.zeros((rounds, per_round))
                regret = np.zeros((rounds, per_round))
                explored = np.zeros((rounds, per_round))
                for r in tqdm(range(rounds), desc=f"seed {seed} {policy}", leave=False):
                    for j in range(per_round):
                        c = int(numbers[who[r, j]])
                        now = t0 + r * HOUR + j * 1000
                        res, _ = service.recommend_customer(
                            f"C{c:07d}", RecommendRequest(k=k, context=Context(context), now_ms=now)
                        )
                        rows = np.asarray([row_of[x.item_id] for x in res.items], np.int64)
                        p = p_all[c][rows]
                        clicked = uniforms[r, j, rows] < p
                        eligible = in_stock.copy()
                        eligible[list(seen[c])] = False
                        best = np.sort(p_all[c][eligible])[::-1][:k]
                        ctr[r, j] = p.mean()
                        regret[r, j] = best.sum() - p.sum()
                        explored[r, j] = sum(x.reason == "explore" for x in res.items)
                        views = []
                        for x, row, hit in zip(res.items, rows.tolist(), clicked.tolist()):
                            if hit:
                                service.feedback(res.request_id, x.item_id, "click", now + 30_000, now_ms=now + 30_000)
                                views.append(
                                    {
                                        "customer_id": f"C{c:07d}",
                                        "item_id": x.item_id,
                                        "event_type": "view",
                                        "channel": "web",
                                        "timestamp": now + 31_000,
                                    }
                                )
                                seen[c].add(row)
                        if views:
                            service.intake(views, now_ms=now + 31_000)
                per_policy[policy]["ctr"].append(ctr)
                per_policy[policy]["regret"].append(regret)
                per_policy[policy]["explored"].append(explored)
        shutil.rmtree(filled.parent, ignore_errors=True)
    return _summary(per_policy, rounds, per_round, k, epsilon, seeds)


def _summary(
    per_policy: dict[str, dict[str, list[np.ndarray]]],
    rounds: int,
    per_round: int,
    k: int,
    epsilon: float,
    seeds: list[int],
) -> list[dict]:
    half = rounds // 2
    late = {p: np.concatenate([c[half:].ravel() for c in v["ctr"]]) for p, v in per_policy.items()}
    rows = []
    for p, v in per_policy.items():
        ctr = np.stack(v["ctr"])  # [seeds, rounds, per_round]
        regret = np.stack(v["regret"])
        row: dict[str, Any] = {
            "policy": p,
            "exploration": "none" if p == "none" else f"{p}, epsilon {epsilon}",
            "ctr_second_half": {"value": round(float(late[p].mean()), 5), "ci95": _ci(late[p])},
            "ctr_first_round": round(float(ctr[:, 0].mean()), 5),
            "ctr_last_round": round(float(ctr[:, -1].mean()), 5),
            "regret_total_per_seed": round(float(regret.sum(axis=(1, 2)).mean()), 2),
            "explored_per_list": round(float(np.stack(v["explored"]).mean()), 3),
            "ctr_by_round": [round(float(x), 5) for x in ctr.mean(axis=(0, 2))],
            "regret_by_round": [round(float(x), 3) for x in np.cumsum(regret.sum(axis=2), axis=1).mean(axis=0)],
        }
        for other in per_policy:
            if other != p:
                d = late[p] - late[other]  # paired: the same seed, round and slot (customer)
                row[f"vs_{other}"] = {"value": round(float(d.mean()), 5), "ci95": _ci(d)}
        rows.append(row)
    for row in rows:
        row.update(k=k, rounds=rounds, requests_per_round=per_round, seeds=len(seeds))
    return rows


def plot(rows: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from journeyrec.io import atomic_path

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for row in rows:
        ctr = np.asarray(row["ctr_by_round"])
        smooth = np.convolve(ctr, np.ones(5) / 5, mode="valid")
        a.plot(np.arange(len(ctr)) + 1, ctr, alpha=0.25)
        a.plot(np.arange(len(smooth)) + 3, smooth, label=row["policy"], color=a.lines[-1].get_color())
    # the regret against the oracle grows alike for every policy (about 52 clicks a round); what
    # separates them is the regret against serving without exploration, drawn on the right
    base = next((np.asarray(r["regret_by_round"]) for r in rows if r["policy"] == "none"), None)
    for row in rows:
        regret = np.asarray(row["regret_by_round"]) - (0 if base is None else base)
        b.plot(np.arange(len(regret)) + 1, regret, label=row["policy"])
    a.set(xlabel="round", ylabel="CTR (expected clicks per shown item)", title="CTR by round (5-round mean)")
    b.axhline(0, color="grey", lw=0.5)
    b.set(
        xlabel="round",
        ylabel="cumulative regret minus no exploration's" if base is not None else "expected clicks missed vs oracle",
        title="cumulative regret per seed, relative to no exploration" if base is not None else "cumulative regret",
    )
    a.legend(), b.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dict]:
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if not (Path(args.bundle) / "manifest.json").is_file():
        parser.error(
            f"{args.bundle}: no bundle; train one with scripts/train.py experiment=demo trainer.max_epochs=2 "
            "output_dir=.cache/bench/bandit/demo"
        )
    rows = run(
        args.bundle,
        args.rounds,
        args.per_round,
        args.customers,
        args.k,
        args.epsilon,
        args.context,
        args.seeds,
        args.workdir,
        args.prior_strength,
        tuple(args.policies),
    )
    if getattr(args, "save", None):
        title = (
            f"demo shop, {args.context}, k={args.k}, epsilon={args.epsilon}, {args.rounds} rounds x "
            f"{args.per_round} requests, seeds {args.seeds}"
        )
        plot(rows, ROOT / "docs" / "img" / f"{args.save}.png", title)
    return rows
