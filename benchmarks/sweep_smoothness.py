"""Sweep the smoothness term's normalisation and weight with the hallucination benchmark.

Runs ``mrtrans benchmark hallucination`` (CPU preset, two seeds) on a *validation* set of synthetic
subjects (``--synth-seed``, default 11) that the benchmark's own test data (synth seed 3) never
sees, for CycleGAN and HarmonicGAN-histogram variants; the default is chosen from this table and
then reported on the test data (docs/training.md). Usage:

    python benchmarks/sweep_smoothness.py --out sweep            # ~50 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from mrtrans.benchmark import run_hallucination_benchmark
from mrtrans.config import HallucinationConfig, load_config

VARIANTS = {  # name -> loss section on top of configs/harmonicgan_hist.yaml
    "hg_brain_pairs_l1": {"smooth_normalization": "brain_pairs", "lambda_smooth": 1.0},
    "hg_brain_pairs_l5": {"smooth_normalization": "brain_pairs", "lambda_smooth": 5.0},
    "hg_brain_pairs_l20": {"smooth_normalization": "brain_pairs", "lambda_smooth": 20.0},
    "hg_brain_affinity_l5": {"smooth_normalization": "brain_affinity", "lambda_smooth": 5.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--synth-seed", type=int, default=11, help="validation subjects (the benchmark's test data use 3)")
    parser.add_argument("--subjects", type=int, default=40, help="validation subjects (the sweep of docs/training.md used 40)")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    methods_dir = args.out.with_name(args.out.name + "_methods")
    methods_dir.mkdir(parents=True, exist_ok=True)
    methods = ["cyclegan"]
    for name, loss in VARIANTS.items():
        path = methods_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"loss": {"smooth_features": "histogram", **loss}}))
        methods.append(str(path))
    cfg = load_config(HallucinationConfig, "hallucination_cpu", {"methods": methods, "seeds": list(range(args.seeds))},
                      folder="evaluation")  # fmt: skip
    cfg = dataclasses.replace(cfg, synth=dataclasses.replace(cfg.synth, seed=args.synth_seed, subjects=args.subjects))
    table = run_hallucination_benchmark(args.out, cfg)
    print(table.read_text())


if __name__ == "__main__":
    main()
