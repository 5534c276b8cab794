"""Safe loading: no artifact a user might receive is unpickled. A payload whose ``__reduce__``
would create a marker file is planted in a bundle (its manifest checksums rewritten to match, so
the checksum check does not hide what the loaders do), in a training run's checkpoints and in
prepared data; every loader refuses it, naming the file, and the marker never appears. A control
shows the same payload does run under plain ``pickle``."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from journeyrec.bundle.format import BundleError, read_manifest, sha256_file
from journeyrec.serving import Recommender


class Plant:
    """Unpickling this runs ``exec``, which writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


def test_control_the_payload_runs_under_plain_pickle(marker):
    pickle.loads(pickle.dumps(Plant(marker)))  # noqa: S301 - the point: this is what must never happen
    assert marker.read_text() == "unpickled"


def reseal(bundle: Path) -> None:
    """Rewrite the manifest's size and sha256 of every file, as an attacker who edits files would."""
    m = json.loads((bundle / "manifest.json").read_text())
    for name in m["files"]:
        m["files"][name] = {"sha256": sha256_file(bundle / name), "bytes": (bundle / name).stat().st_size}
    (bundle / "manifest.json").write_text(json.dumps(m))
    read_manifest(bundle)  # the checksums pass: whatever stops the payload now is the loader


def planted_npy(path: Path, marker: Path) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.array([Plant(marker), 1], dtype=object), allow_pickle=True)


def planted_npz(path: Path, marker: Path, like: Path) -> None:
    with np.load(like) as z:
        arrays = {k: z[k] for k in z.files}
    first = next(iter(arrays))
    arrays[first] = np.array([Plant(marker)], dtype=object)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def planted_torch(path: Path, marker: Path, **extra) -> None:
    torch.save({"state_dict": {"model.w": torch.zeros(2)}, "epoch": 1, "payload": Plant(marker), **extra}, path)


@pytest.mark.parametrize("name", ["item_vectors.npy", "stats.npz", "model.safetensors"])
def test_bundle_with_a_planted_pickle_is_refused_and_nothing_runs(demo_bundle, tmp_path, marker, name):
    bundle = shutil.copytree(demo_bundle.path, tmp_path / "bundle")
    target = bundle / name
    if name.endswith(".npy"):
        planted_npy(target, marker)
    elif name.endswith(".npz"):
        planted_npz(target, marker, demo_bundle.path / name)
    else:  # a torch pickle where the safetensors weights belong
        planted_torch(target, marker)
    reseal(bundle)
    with pytest.raises(BundleError, match=name):
        Recommender.load(bundle)
    assert not marker.exists()


def test_resume_from_a_planted_checkpoint_is_refused_and_nothing_runs(tmp_path, marker):
    """Training's resume (``ckpt_path=last``) reads last.ckpt weights-only."""
    from journeyrec.training.run import train

    from conftest import TINY_DEMO, compose

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    planted_torch(out / "checkpoints" / "last.ckpt", marker)
    cfg = compose(
        "train", [*TINY_DEMO, "logger.mlflow=false", "export.enabled=false", f"output_dir={out}", "ckpt_path=last"]
    )
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        train(cfg)
    assert not marker.exists()


def test_export_and_checkpoint_io_refuse_a_planted_checkpoint(tiny_trained_run, tmp_path, marker):
    """scripts/export_index.py (checkpoint=best|last|PATH) and Lightning's checkpoint reader."""
    from journeyrec.training.checkpoint_io import AtomicCheckpointIO
    from journeyrec.training.export_run import load_run_model

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_trained_run.out / "config.yaml", run / "config.yaml")
    shutil.copytree(tiny_trained_run.out / "prepared", run / "prepared")
    (run / "checkpoints").mkdir()
    planted_torch(run / "checkpoints" / "best.ckpt", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_run_model(run, "best")
    with pytest.raises(pickle.UnpicklingError):
        AtomicCheckpointIO().load_checkpoint(run / "checkpoints" / "best.ckpt")
    with pytest.raises(ValueError, match="weights_only=True only"):
        AtomicCheckpointIO().load_checkpoint(run / "checkpoints" / "best.ckpt", weights_only=False)
    assert not marker.exists()
    # the real checkpoint of the same run loads through the same path
    model, _, _ = load_run_model(tiny_trained_run.out, "best")
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", ["arrays/items.npy", "arrays/test_targets.npy"])
@pytest.mark.parametrize("mmap", [False, True])
def test_prepared_data_with_a_planted_pickle_is_refused(tiny_trained_run, tmp_path, marker, name, mmap):
    """What training, scripts/evaluate.py and scripts/segment.py read (load_prepared, memory-mapped
    or not)."""
    from journeyrec.data.prepare import load_prepared

    prepared = shutil.copytree(tiny_trained_run.out / "prepared", tmp_path / "prepared")
    assert (prepared / name).is_file()
    planted_npy(prepared / name, marker)
    with pytest.raises(ValueError, match="allow_pickle=False|Python objects"):
        load_prepared(prepared, mmap=mmap)
    assert not marker.exists()


def test_no_loader_in_the_source_unpickles():
    """Every torch.load / np.load in src/ and scripts/ states weights_only=True / allow_pickle=False,
    and nothing imports pickle, joblib or cloudpickle to read an artifact."""
    import re

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("src/**/*.py"), *root.glob("scripts/*.py")]:
        text = path.read_text()
        for m in re.finditer(r"(torch\.load|np\.load)\(([^()]|\([^()]*\))*\)", text):
            call = m.group(0)
            if ("torch.load" in call and "weights_only=True" not in call) or (
                "np.load" in call and "allow_pickle=False" not in call
            ):
                offenders.append(f"{path.relative_to(root)}: {call}")
        if re.search(r"^\s*(import|from)\s+(pickle|cPickle|joblib|cloudpickle|dill)\b", text, re.M):
            offenders.append(f"{path.relative_to(root)}: imports a pickle library")
    assert not offenders, offenders
