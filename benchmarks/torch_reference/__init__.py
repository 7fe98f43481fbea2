"""PyTorch equivalents of the project's encoders, losses and step (benchmark only).

`benchmarks/train_step.py --reference torch` times these side by side with
the JAX train step. They mirror `contrastive.models` (ResNet-18 with the
small-image stem, the log-mel audio CNN, the 1-D sensor ResNet, the MLP
projection head), SimCLR's NT-Xent and MoCo's queue InfoNCE, and optax's
LARS, with the same shapes and parameter counts. torch is a benchmark-only
dependency (`pip install torch==2.13.0`), never imported by the library.
"""
