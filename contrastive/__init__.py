"""contrastive: contrastive representation learning and negative sampling in JAX."""
