"""Tests of the waveform -> log-mel -> CNN audio encoder ('rbg' keys)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import audio_cnn
from contrastive.models import audio_frontend
from contrastive.models import heads

T = 920  # 10 frames of 200 samples every 80


def _key(seed: int = 0) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


def _model(**kwargs) -> audio_cnn.AudioCNN:
  return audio_cnn.AudioCNN(**{"width": 4, "depth": 2, "num_mel_bins": 16,
                               **kwargs})


def _shift_by_noise(rng, spec):
  """A per-example transform: adds one random constant to the spectrogram."""
  assert spec.shape == (10, 16), spec.shape  # per example: [frames, mels]
  return spec + 5.0 * jax.random.normal(rng, ())


@pytest.fixture(scope="module")
def setup():
  model = _model()
  rng = np.random.default_rng(0)
  waves = jnp.asarray(rng.standard_normal((3, T)), jnp.float32)
  variables = model.init(_key(), waves, train=False)
  return model, waves, variables


def test_output_shapes_train_and_eval(setup):
  model, waves, variables = setup
  out_eval = model.apply(variables, waves, train=False)
  out_train, state = model.apply(variables, waves, train=True,
                                 mutable=["batch_stats"])
  assert out_eval.shape == out_train.shape == (3, 8) == (3,
                                                        model.num_features)
  assert np.all(np.isfinite(out_train))
  assert not np.allclose(state["batch_stats"]["input_bn"]["mean"],
                         variables["batch_stats"]["input_bn"]["mean"])


def test_spectrogram_is_the_front_end(setup):
  model, waves, _ = setup
  want = audio_frontend.log_mel_spectrogram(waves, num_mel_bins=16)
  np.testing.assert_array_equal(model.spectrogram(waves), want)


def test_spec_transform_only_in_train_mode(setup):
  model, waves, variables = setup
  plain = model.apply(variables, waves, train=False)
  # Eval ignores the transform (and needs no rng for it).
  np.testing.assert_array_equal(
      model.apply(variables, waves, train=False,
                  spec_transform=_shift_by_noise),
      plain,
  )
  train = lambda st, seed=1: model.apply(  # noqa: E731
      variables, waves, train=True, spec_transform=st,
      rngs={"spec_augment": _key(seed)}, mutable=["batch_stats"],
  )[0]
  untouched = train(None)
  augmented = train(_shift_by_noise)
  assert not np.allclose(augmented, untouched)
  np.testing.assert_array_equal(augmented, train(_shift_by_noise))  # same key
  assert not np.allclose(augmented, train(_shift_by_noise, seed=2))


def test_spec_transform_gets_a_key_per_example(setup):
  model, waves, variables = setup
  same = jnp.broadcast_to(waves[:1], waves.shape)
  out = lambda st: model.apply(  # noqa: E731
      variables, same, train=True, spec_transform=st,
      rngs={"spec_augment": _key(1)}, mutable=["batch_stats"],
  )[0]
  plain = out(None)
  np.testing.assert_allclose(plain[0], plain[1], rtol=1e-5)
  augmented = out(_shift_by_noise)
  assert not np.allclose(augmented[0], augmented[1])


def test_contrastive_model_forwards_spec_transform(setup):
  _, waves, _ = setup
  model = heads.ContrastiveModel(backbone=_model(), projection_dims=(4,))
  variables = model.init(_key(), waves, train=False)
  run = lambda st: model.apply(  # noqa: E731
      variables, waves, train=True, spec_transform=st,
      rngs={"spec_augment": _key(1)}, mutable=["batch_stats"],
  )[0]["features"]
  assert not np.allclose(run(_shift_by_noise), run(None))


def test_bfloat16_and_jit():
  model = _model(dtype=jnp.bfloat16)
  waves = jnp.ones((2, T))
  variables = model.init(_key(), waves, train=False)
  out = jax.jit(lambda v, w: model.apply(v, w, train=False))(variables, waves)
  assert out.dtype == jnp.bfloat16
  for leaf in jax.tree.leaves(variables):
    assert leaf.dtype == jnp.float32


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="upper_edge_hertz"):
    _model(sample_rate=8000, upper_edge_hertz=6000.0)
  with pytest.raises(ValueError, match="fft_length"):
    _model(fft_length=100)
  with pytest.raises(ValueError, match="depth"):
    _model(depth=0)
  with pytest.raises(ValueError, match="rank 2"):
    _model().init(_key(), jnp.zeros((2, 1, T)), train=False)
