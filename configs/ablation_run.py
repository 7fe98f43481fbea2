"""One run of the ablation grid, as `launch.main` trains it alone.

The argument is 'DATASET,METHOD[,SWEEP]' (SWEEP: a sweep of
configs/ablation.py, default 'default'); the config is exactly the one the
sweep gives that cell (seed 0; set --config.seed or
--config.population.seeds), e.g.

  python -m launch.main --config=configs/ablation_run.py:fsdd,dcl \
      --workdir=/tmp/fsdd_dcl --config.population.seeds="(0,1,2,3,4)"
"""
from configs import ablation
from contrastive.ablation import grid


def get_config(arg: str | None = None):
  parts = (arg or "").split(",")
  if len(parts) not in (2, 3) or not all(parts):
    raise ValueError(
        f"config argument {arg!r} must be 'DATASET,METHOD[,SWEEP]', e.g."
        " 'fsdd,dcl' or 'uci_hapt,simclr,quick'.")
  dataset, method = parts[:2]
  sweep = ablation.get_config(parts[2] if len(parts) == 3 else "default")
  if method not in sweep.methods:
    raise ValueError(f"method {method!r} is not in the sweep; its methods:"
                     f" {', '.join(sweep.methods)}.")
  kind = grid.method_specs(sweep)[method]["kind"]
  if kind != "contrastive":
    raise ValueError(f"{method!r} is a {kind!r} row; launch.main trains the"
                     " contrastive rows only.")
  return grid.run_config(grid.Run(method, dataset, 0), sweep)
