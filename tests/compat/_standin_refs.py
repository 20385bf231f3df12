"""float64 references for the sgl_kernel stand-in tests, written from each op's definition."""

import torch


def rms_ref(x: torch.Tensor, w: torch.Tensor, eps: float, gemma: bool) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * w (gemma: * (1 + w)), in float64."""
    x, w = x.double(), w.double()
    scale = (1.0 + w) if gemma else w
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * scale


def rope_ref(x, pos, rot, base, neox):
    """x: [T, H, D]; rotate the first `rot` channels of each head, in float64."""
    # rotates the first `rot` channels by pos * base^(-2i/rot)
    inv = base ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)  # [rot/2]
    ang = pos.double()[:, None] * inv[None, :]  # [T, rot/2]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    y = x.clone()
    if neox:
        i1, i2 = torch.arange(rot // 2), torch.arange(rot // 2) + rot // 2
    else:
        i1, i2 = torch.arange(0, rot, 2), torch.arange(1, rot, 2)
    y[..., i1] = x[..., i1] * cos - x[..., i2] * sin
    y[..., i2] = x[..., i2] * cos + x[..., i1] * sin
    return y
