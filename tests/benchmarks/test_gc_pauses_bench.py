"""The gc-pauses benchmark alternates a baseline phase, every object left to the collector, with
a frozen one on the same requests, and leaves the process unfrozen."""

from __future__ import annotations

import argparse
import gc

from benchmarks.gc_pauses import add_arguments, main


def test_phases_alternate_and_only_the_frozen_one_takes_the_start_up_out(demo_bundle):
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--bundle", str(demo_bundle.path), "--requests", "120", "--rounds", "2", "--k", "5"])
    rows = main(args, p)
    assert [(r["round"], r["frozen_objects"] > 0) for r in rows] == [(1, False), (1, True), (2, False), (2, True)]
    for base, frozen in (rows[0:2], rows[2:4]):
        assert base["frozen_objects"] == 0 and frozen["frozen_objects"] > 10_000
        # what the collector walks: everything in the baseline, only what came since in the frozen phase
        assert frozen["tracked_objects"] < base["tracked_objects"] / 10
        assert base["requests"] == frozen["requests"] == 120
        assert base["gen0_collections"] > 0 and frozen["gen0_collections"] > 0  # the hook saw them
    assert gc.get_freeze_count() == 0 and not any("GCPauses" in repr(c) for c in gc.callbacks)
