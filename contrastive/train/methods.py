"""What each method is: its negatives, the state it carries, its hooks.

The one table that every dispatch on `config.method` reads (the experiment
that builds the state and the momentum schedule, the train step, the loss
table of `objectives`):

- `METHODS`: each value of `config.method`, with where its negatives come
  from (`IN_BATCH`: the other examples of the global batch; `QUEUE`: a queue
  of keys from a momentum encoder), whether the state carries a momentum
  encoder, and the config section it reads (`config.moco`).
- `CLUSTER_OPTIONS`: the config sections that add cluster work to any
  method: where their parsed config is kept on the `Experiment`, the key of
  their state in `TrainState.extra`, whether they restrict the negatives to
  the anchor's clusters (the loss must then take a `negative_mask`), and the
  hook that runs between steps (a class of
  `contrastive.train.cluster_hooks`).

Which loss accepts a negative mask, and from which sources a loss can take
its negatives, is declared with the loss, in `objectives`.

Adding a method that takes its negatives from an existing source is one row
of `METHODS` (and its config file); a new source also needs its negatives in
`step._negatives` and its state in `experiment._init_state`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

# Where a method's negatives come from.
IN_BATCH = "in_batch"
QUEUE = "queue"
NEGATIVE_SOURCES = (IN_BATCH, QUEUE)


@dataclasses.dataclass(frozen=True)
class Method:
  """One value of `config.method`.

  Attributes:
    name: the value.
    negatives: one of `NEGATIVE_SOURCES`.
    momentum_encoder: the state carries an EMA copy of the encoder
      (`momentum_params`, `momentum_batch_stats`) that makes the keys.
    section: the config section of the method's own fields, or None.
  """

  name: str
  negatives: str
  momentum_encoder: bool = False
  section: str | None = None

  @property
  def queue(self) -> bool:
    """Whether the state carries a queue of keys (`TrainState.queue`)."""
    return self.negatives == QUEUE


METHODS: Mapping[str, Method] = {
    m.name: m for m in (
        Method("simclr", negatives=IN_BATCH),
        Method("moco", negatives=QUEUE, momentum_encoder=True,
               section="moco"),
    )
}


def get_method(name: Any) -> Method:
  """The row of `METHODS` for `name`.

  Raises:
    ValueError: an unknown name; the message lists the valid ones.
  """
  if name not in METHODS:
    raise ValueError(
        f"Unknown method {name!r} (config.method); valid methods:"
        f" {', '.join(METHODS)}.")
  return METHODS[name]


def methods_from(sources) -> tuple[str, ...]:
  """The methods whose negatives come from one of `sources`."""
  return tuple(m.name for m in METHODS.values() if m.negatives in sources)


@dataclasses.dataclass(frozen=True)
class ClusterOption:
  """A config section that adds cluster work to any method.

  Attributes:
    section: the config field (`config.<section>`).
    title: its name in messages.
    attribute: the `Experiment` field that holds its parsed config.
    state: the key of its state in `TrainState.extra`.
    restricts_negatives: it narrows each anchor's negatives to its clusters
      (the train step's `restrict_negatives` rule), through the loss's
      `negative_mask`.
    hook: the name of its hook class in `contrastive.train.cluster_hooks`.
  """

  section: str
  title: str
  attribute: str
  state: str
  restricts_negatives: bool
  hook: str


CLUSTER_OPTIONS: tuple[ClusterOption, ...] = (
    ClusterOption("mcl", "MCL", attribute="mcl", state="mcl",
                  restricts_negatives=True, hook="MCLHook"),
    ClusterOption("balanced_batches", "cluster-balanced batches",
                  attribute="balanced", state="balanced_clusters",
                  restricts_negatives=False, hook="BalancedBatchesHook"),
)


def active_options(exp) -> tuple[ClusterOption, ...]:
  """The options that experiment `exp` uses (its parsed config is set)."""
  return tuple(o for o in CLUSTER_OPTIONS
               if getattr(exp, o.attribute, None) is not None)
