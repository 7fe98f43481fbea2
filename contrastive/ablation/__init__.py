"""Ablation sweeps: methods x datasets x seeds, one command, one table.

- `grid`: the runs of a sweep config (`configs/ablation.py`) and each run's
  config.
- `runner.run_sweep`: runs them one after another in per-run workdirs,
  resumably; a failed run is recorded and the sweep goes on. Several
  workers may share a workdir: `claims` gives each (dataset, method) group
  to one of them, and a dead worker's group to another.
- `supervised`: the cross-entropy encoder used as a ceiling.
- `similarity`: end-of-run histograms of positive / negative cosines.
- `aggregate`, `plots`, `report.write_report`: mean ± std over seeds as CSV,
  JSON and Markdown, and PNG plots.
- `negative_weights`: how DCL, HCL, CCL-K and SimANS weigh each negative
  of a batch (the loss-explorer colab).

The launcher is `python -m launch.ablate --config=configs/ablation.py:default
--workdir=...`.
"""
