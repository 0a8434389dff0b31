"""Random shifts and flips: seeded, vectorised, and exactly the drawn transform."""

from __future__ import annotations

import pytest
import torch

from hessian_spectra.data.augment import apply_shift_flip, draw_shift_flip, shift_flip


def _images(n: int = 16, c: int = 3, h: int = 10, w: int = 12) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(123)) + 0.5  # no zeros inside


def test_deterministic_for_seeded_generator_and_shape_preserved():
    x = _images()
    a = shift_flip(x, torch.Generator().manual_seed(0))
    b = shift_flip(x, torch.Generator().manual_seed(0))
    c = shift_flip(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_only_equals_torch_flip():
    x = _images()
    generator = torch.Generator().manual_seed(5)
    _, _, flips = draw_shift_flip(len(x), torch.Generator().manual_seed(5), max_shift=0, flip=True)
    out = shift_flip(x, generator, max_shift=0, flip=True)
    assert 0 < flips.sum() < len(x)  # both kinds occur with this seed
    for i in range(len(x)):
        expected = torch.flip(x[i], dims=[-1]) if flips[i] else x[i]
        assert torch.equal(out[i], expected)
    assert torch.equal(shift_flip(x, torch.Generator(), max_shift=0, flip=False), x)


def _moved(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference: content moved down by dy and right by dx, zero fill."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[:, i, j] = image[:, i - dy, j - dx]
    return out


@pytest.mark.parametrize("flip", [False, True])
def test_shifted_content_matches_drawn_offsets(flip):
    x = _images()
    dy, dx, flips = draw_shift_flip(len(x), torch.Generator().manual_seed(3), max_shift=4, flip=flip)
    out = shift_flip(x, torch.Generator().manual_seed(3), max_shift=4, flip=flip)
    assert dy.abs().max() <= 4 and dx.abs().max() <= 4 and (dy != 0).any() and (dx != 0).any()
    for i in range(len(x)):
        source = torch.flip(x[i], dims=[-1]) if flips[i] else x[i]
        assert torch.equal(out[i], _moved(source, int(dy[i]), int(dx[i])))


def test_apply_matches_explicit_offsets():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    out = apply_shift_flip(x, torch.tensor([1, 0]), torch.tensor([0, -2]), torch.tensor([False, True]))
    assert torch.equal(out[0, 0, 1:], x[0, 0, :3]) and torch.equal(out[0, 0, 0], torch.zeros(4))
    flipped = torch.flip(x[1, 0], dims=[-1])
    assert torch.equal(out[1, 0, :, :2], flipped[:, 2:]) and torch.equal(out[1, 0, :, 2:], torch.zeros(4, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_result_on_cuda_with_cpu_generator():
    x = _images()
    cpu = shift_flip(x, torch.Generator().manual_seed(9))
    gpu = shift_flip(x.cuda(), torch.Generator().manual_seed(9))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    on_device = shift_flip(x.cuda(), torch.Generator(device="cuda").manual_seed(9))
    assert on_device.shape == x.shape and on_device.device.type == "cuda"


def test_invalid_shift():
    with pytest.raises(ValueError, match="max_shift"):
        shift_flip(_images(), torch.Generator(), max_shift=-1)
