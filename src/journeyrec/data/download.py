"""Where each public dataset comes from, under which terms, and how to fetch the official files.

``scripts/download_data.py NAME`` uses this table. Files that the publisher serves openly are
downloaded over HTTPS (and unzipped); datasets behind a login (Kaggle, Tianchi, CodaLab) are
fetched with the Kaggle CLI when it is installed and configured, otherwise the exact steps are
printed. Nothing here runs in the tests (no network at test time).
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Provenance", "PROVENANCE", "describe", "download"]


@dataclass(frozen=True)
class Provenance:
    publisher: str
    licence: str
    url: str
    files: tuple[str, ...]  # the published names the reader expects
    http: dict[str, str] = field(default_factory=dict)  # variant -> URL of an openly served archive / file
    kaggle: tuple[str, str] | None = None  # ("datasets" | "competitions", slug)
    manual: str = ""  # steps when there is no automatic download


PROVENANCE: dict[str, Provenance] = {
    "taobao": Provenance(
        publisher="Alibaba Group, Tianchi (UserBehavior, dataset 649)",
        licence="Tianchi dataset terms: research / non-commercial use, cite the source",
        url="https://tianchi.aliyun.com/dataset/649",
        files=("UserBehavior.csv",),
        manual="Log in to Tianchi, open the URL, download UserBehavior.csv.zip and unzip it into the target directory.",
    ),
    "yoochoose": Provenance(
        publisher="YOOCHOOSE GmbH, RecSys Challenge 2015",
        licence="released for the challenge: research / non-commercial use, cite the RecSys Challenge 2015",
        url="https://recsys.acm.org/recsys15/challenge/",
        files=("yoochoose-clicks.dat", "yoochoose-buys.dat"),
        kaggle=("datasets", "chadgostopp/recsys-challenge-2015"),
    ),
    "movielens": Provenance(
        publisher="GroupLens Research, University of Minnesota",
        licence="GroupLens usage licence: research use, acknowledge the dataset, "
        "no redistribution except under the same terms, commercial use needs permission",
        url="https://grouplens.org/datasets/movielens/",
        files=("ratings.dat", "movies.dat", "ratings.csv", "movies.csv", "u.data", "u.item"),
        http={
            v: f"https://files.grouplens.org/datasets/movielens/{v}.zip"
            for v in ("ml-1m", "ml-100k", "ml-latest-small", "ml-10m", "ml-20m", "ml-25m", "ml-32m")
        },
    ),
    "s3rec": Provenance(
        publisher="RUCAIBox, S3-Rec (Zhou et al., CIKM 2020), from the Amazon review data of McAuley et al.",
        licence="code MIT; the Amazon review data is for research use",
        url="https://github.com/RUCAIBox/CIKM2020-S3Rec",
        files=("<Name>.txt", "<Name>_item2attributes.json"),
        http={
            v: f"https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/{v}.txt"
            for v in ("Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp", "LastFM")
        },
    ),
    "diginetica": Provenance(
        publisher="DIGINETICA and partners, CIKM Cup 2016 Track 2",
        licence="released for the CIKM Cup 2016 and research; cite the challenge",
        url="https://competitions.codalab.org/competitions/11161",
        files=("train-item-views.csv", "train-purchases.csv", "product-categories.csv", "products.csv"),
        manual="Register at the CodaLab competition, download dataset-train-diginetica.zip (Participate -> Get Data) "
        "and unzip it into the target directory.",
    ),
    "retailrocket": Provenance(
        publisher="Retail Rocket",
        licence="CC BY-NC-SA 4.0",
        url="https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
        files=("events.csv", "item_properties_part1.csv", "item_properties_part2.csv", "category_tree.csv"),
        kaggle=("datasets", "retailrocket/ecommerce-dataset"),
    ),
    "rees46": Provenance(
        publisher="REES46 Marketing Platform (Open CDP project)",
        licence="free to use with attribution: link the dataset page and REES46 (https://rees46.com)",
        url="https://www.kaggle.com/datasets/mkechinov/ecommerce-behavior-data-from-multi-category-store",
        files=("2019-Oct.csv", "2019-Nov.csv"),
        kaggle=("datasets", "mkechinov/ecommerce-behavior-data-from-multi-category-store"),
    ),
    "otto": Provenance(
        publisher="OTTO (GmbH & Co KG)",
        licence="CC BY 4.0 (data); MIT (code of https://github.com/otto-de/recsys-dataset)",
        url="https://www.kaggle.com/competitions/otto-recommender-system/data",
        files=("train.jsonl", "test.jsonl"),
        kaggle=("competitions", "otto-recommender-system"),
    ),
}


def describe(name: str) -> str:
    p = _get(name)
    lines = [
        f"{name}: {p.publisher}",
        f"  licence : {p.licence}",
        f"  official: {p.url}",
        f"  files   : {', '.join(p.files)}",
    ]
    if p.http:
        lines.append(f"  variants: {', '.join(p.http)}")
    if p.kaggle:
        lines.append(
            f"  kaggle  : kaggle {p.kaggle[0]} download {'-c' if p.kaggle[0] == 'competitions' else '-d'} {p.kaggle[1]}"
        )
    if p.manual:
        lines.append(f"  manual  : {p.manual}")
    return "\n".join(lines)


def _get(name: str) -> Provenance:
    if name not in PROVENANCE:
        raise KeyError(f"unknown dataset '{name}'; known: {sorted(PROVENANCE)}")
    return PROVENANCE[name]


def _fetch(url: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:  # noqa: S310 (https URLs from the table)
        shutil.copyfileobj(resp, fh, length=1 << 20)
    tmp.replace(target)
    return target


def download(name: str, target: str | Path, variant: str | None = None) -> list[Path]:
    """Fetch the official files of ``name`` into ``target``; returns the files written.
    Raises RuntimeError with the manual steps when no automatic download is possible."""
    p = _get(name)
    out = Path(target)
    if p.http:
        v = variant or next(iter(p.http))
        if v not in p.http:
            raise KeyError(f"{name}: unknown variant '{v}'; known: {list(p.http)}")
        url = p.http[v]
        if url.endswith(".zip"):
            archive = _fetch(url, out / Path(url).name)
            with zipfile.ZipFile(archive) as z:
                z.extractall(out)
            archive.unlink()
            return sorted(x for x in out.rglob("*") if x.is_file())
        files = [_fetch(url, out / Path(url).name)]
        if name == "s3rec":
            files.append(_fetch(url.replace(".txt", "_item2attributes.json"), out / f"{v}_item2attributes.json"))
        return files
    if p.kaggle and shutil.which("kaggle"):
        out.mkdir(parents=True, exist_ok=True)
        kind, slug = p.kaggle
        flag = "-c" if kind == "competitions" else "-d"
        subprocess.run(["kaggle", kind, "download", flag, slug, "-p", str(out)], check=True)
        for archive in out.glob("*.zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(out)
            archive.unlink()
        return sorted(x for x in out.rglob("*") if x.is_file())
    if p.manual:
        steps = p.manual
    elif p.kaggle is not None:
        kind, slug = p.kaggle
        flag = "-c" if kind == "competitions" else "-d"
        steps = (
            "install the Kaggle CLI (pip install kaggle), put your API token in ~/.kaggle/kaggle.json, "
            f"accept the terms at {p.url}, then run this again (or: kaggle {kind} download {flag} {slug} -p {out})"
        )
    else:
        steps = f"download the files from {p.url} into {out}"
    raise RuntimeError(f"{name} cannot be downloaded automatically here. {steps}")
