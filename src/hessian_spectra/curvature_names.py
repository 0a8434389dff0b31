"""The curvature kinds and their product modes by name, torch-free, so that the command line can offer them before
torch is imported. The engine's registry (``curvature.registry``) holds one class per name with exactly these modes;
a test checks that both agree."""

MODES = ("cached", "forward", "double_backward")
CURVATURE_MODES: dict[str, tuple[str, ...]] = {
    "hessian": MODES,
    "ggn": MODES,
    "empirical_fisher": ("cached",),
}
CURVATURES = tuple(CURVATURE_MODES)
