"""What the harness measures, at two sizes: ``FULL`` (the recorded run) and ``SMOKE`` (a code-path check)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelChoice:
    """A model of the zoo at a width, trained on digits for ``epochs`` (``steps_per_epoch`` random batches each,
    or full passes when None)."""

    name: str
    width: float
    epochs: int
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class Sizes:
    """Every size knob of one harness run."""

    label: str
    models: tuple[ModelChoice, ...]
    samples: int  # Hessian samples of sections 1-3
    batch_size: int
    product_rounds: int  # interleaved repetitions of section 1
    eigen_models: tuple[str, ...]  # checkpoints of section 2
    eigen_tol: float  # the accuracy every top-5 method is held to
    reference_tol: float  # the float64 reference's relative Ritz residuals
    reference_max_steps: int
    eigenthings_max_steps: int  # search limit for hessian-eigenthings' accurate step count
    density_model: str
    density_samples: int
    density_steps: int
    density_probes: int
    density_rounds: int
    scaling_samples: tuple[int, ...]
    scaling_steps: int
    scaling_probes: int
    import_rounds: int

    def model(self, name: str) -> ModelChoice:
        """The model choice named ``name``."""
        return next(choice for choice in self.models if choice.name == name)


IMAGE_SIZE = 32
TRAIN_BATCH = 32

# Widths: on 2 CPU cores the full run takes about 20 minutes with vgg11_bn at 1/8 and resnet18 at 1/16 width
# (448k and 45k parameters); its cost is dominated by resnet18's 32x32 feature maps, whose products cost 2.3x
# more at 1/8 width, and by the 10,000-sample scaling jobs. At full width one product over 10,000 samples alone
# takes minutes.
FULL = Sizes(
    label="full",
    models=(
        ModelChoice("lenet", 1.0, epochs=6),
        ModelChoice("vgg11_bn", 0.125, epochs=4),
        ModelChoice("resnet18", 0.0625, epochs=3),
    ),
    samples=512,
    batch_size=128,
    product_rounds=5,
    eigen_models=("lenet",),
    eigen_tol=1e-3,
    reference_tol=1e-10,
    reference_max_steps=600,
    eigenthings_max_steps=200,
    density_model="lenet",
    density_samples=256,
    density_steps=48,
    density_probes=2,
    density_rounds=3,
    scaling_samples=(100, 1_000, 10_000),
    scaling_steps=4,
    scaling_probes=1,
    import_rounds=3,
)

SMOKE = Sizes(
    label="smoke",
    models=(
        ModelChoice("lenet", 0.25, epochs=1, steps_per_epoch=4),
        ModelChoice("vgg11_bn", 1 / 32, epochs=1, steps_per_epoch=4),
    ),
    samples=48,
    batch_size=24,
    product_rounds=3,
    eigen_models=("lenet",),
    eigen_tol=1e-3,
    reference_tol=1e-10,
    reference_max_steps=400,
    eigenthings_max_steps=120,
    density_model="lenet",
    density_samples=48,
    density_steps=8,
    density_probes=2,
    density_rounds=2,
    scaling_samples=(24, 96, 384),
    scaling_steps=2,
    scaling_probes=1,
    import_rounds=1,
)
