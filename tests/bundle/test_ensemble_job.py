"""scripts/ensemble.py writes one bundle from several (real Hydra composition, a real FAISS index):
an ensemble of a bundle with itself answers as that bundle does; one bundle, or an ensemble
written over one of its members, is refused in one line and leaves the member as it was."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import journeyrec
from journeyrec.bundle.format import read_bundle
from journeyrec.models.ensemble import Ensemble

from conftest import ROOT


def ensemble_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ensemble.py"), *args], cwd=ROOT, capture_output=True, text=True
    )


def test_an_ensemble_of_a_bundle_with_itself_answers_as_the_bundle(demo_bundle, tmp_path: Path):
    out = tmp_path / "ensemble"
    proc = ensemble_cli(f"bundles=[{demo_bundle.path},{demo_bundle.path}]", f"out={out}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    model = read_bundle(out).model
    assert isinstance(model, Ensemble) and len(model.members) == 2
    alone = journeyrec.load_bundle(demo_bundle.path, epsilon=0.0, diversity_lambda=1.0)
    both = journeyrec.load_bundle(out, epsilon=0.0, diversity_lambda=1.0)
    for session in demo_bundle.sessions(5):
        request = journeyrec.RecommendRequest.from_items([e.item_id for e in session], k=10)
        a, b = alone.recommend(request), both.recommend(request)
        assert [r.item_id for r in b.items] == [r.item_id for r in a.items]


def test_one_bundle_or_an_ensemble_over_a_member_is_refused_in_one_line(demo_bundle, tmp_path: Path):
    out = tmp_path / "ensemble"
    proc = ensemble_cli(f"bundles=[{demo_bundle.path}]", f"out={out}")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: an ensemble needs at least 2 bundles, got 1"
    assert not out.exists()

    member = tmp_path / "member"
    shutil.copytree(demo_bundle.path, member)
    before = {p.name: p.read_bytes() for p in member.iterdir() if p.is_file()}
    proc = ensemble_cli(f"bundles=[{member},{demo_bundle.path}]", f"out={member}")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"{member}: is one of the ensemble's bundles" in proc.stderr
    assert {p.name: p.read_bytes() for p in member.iterdir() if p.is_file()} == before
