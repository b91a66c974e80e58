"""Where does a network look? Grad-CAM, guided backpropagation and guided Grad-CAM.

Introduced in the paper notebook ``lectures/papers/grad_cam.ipynb`` (it extends lecture 6, "what networks
learn"). Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization*, 2016.

Grad-CAM for class ``c`` and a feature map ``A`` (K channels, h x w) of some layer:

1. ``y_c``: the class score *before* the softmax;
2. ``alpha_k = mean_ij d y_c / d A_k[i, j]`` (global-average-pooled gradient, one weight per channel);
3. ``L_c = ReLU(sum_k alpha_k A_k)`` (h x w), up-sampled bilinearly to the input size.

With ``sign=-1`` the gradient of ``-y_c`` is used: the map then shows the regions that *lower* the score of
``c`` (the paper's "counterfactual explanation", what confuses the network about ``c``).

Guided backpropagation (Springenberg et al., 2015) is the gradient of ``y_c`` with respect to the input,
where every ReLU also lets only *positive* gradients through on the way back. Guided Grad-CAM is its
element-wise product with the up-sampled Grad-CAM map: fine detail from the first, class-discrimination
from the second.

Letter legend: B batch, C input channels, H, W input size, K channels and h, w size of the feature map.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = ["grad_cam", "guided_backprop", "guided_grad_cam", "guided_relus", "normalize_map"]

#: Activation modules whose backward pass :func:`guided_relus` makes "guided".
GUIDED_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)


def _check_inputs(model: nn.Module, images: Tensor, target: int | Sequence[int] | Tensor) -> Tensor:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor(images, "images")
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float Tensor[B, C, H, W], got {images.dtype} of shape {tuple(images.shape)}")
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if target.numel() == 1:
        target = target.expand(images.shape[0])
    if target.numel() != images.shape[0]:
        raise ValueError(f"target must be one class or one class per image ({images.shape[0]}), got {target.numel()}")
    return target.to(images.device)


def _class_scores(logits: Tensor, target: Tensor) -> Tensor:
    if logits.dim() != 2:
        raise ValueError(f"model must return class scores of shape (B, num_classes), got {tuple(logits.shape)}")
    if bool((target < 0).any()) or bool((target >= logits.shape[1]).any()):
        raise ValueError(f"target classes must be in [0, {logits.shape[1]}), got {target.tolist()}")
    return logits.gather(1, target[:, None]).sum()  # sum over the batch: each image's gradient is its own


def grad_cam(model: nn.Module, layer: nn.Module, images: Tensor, target: int | Sequence[int] | Tensor,
             sign: float = 1.0, upsample: bool = True) -> Tensor:
    """Grad-CAM heat map of ``target`` at the output of ``layer``.

    Introduced in the paper notebook ``lectures/papers/grad_cam.ipynb``. Mirrors the reference
    implementation of the paper (and ``pytorch-grad-cam``'s ``GradCAM``) without normalising the map:
    use :func:`normalize_map` for display.

    Args:
        model: returns class scores (logits, before the softmax) of shape ``(B, num_classes)``. Put it in
            ``eval()`` mode first (BatchNorm and dropout act as at test time).
        layer: a submodule of ``model`` whose output ``(B, K, h, w)`` is the feature map (usually the last
            convolutional stage, e.g. ``model.features[-1]``).
        images (Tensor[B, C, H, W]): normalised as the model expects.
        target: one class index for all images, or one per image.
        sign: ``1`` for the map of evidence *for* the class, ``-1`` for the counterfactual map of what
            speaks *against* it.
        upsample: bilinearly up-sample the map to ``(H, W)``; ``False`` returns it at ``(h, w)``.

    Returns:
        Tensor[B, H, W] (or ``[B, h, w]``): non-negative heat maps, detached.
    """
    target = _check_inputs(model, images, target)
    if not isinstance(layer, nn.Module) or not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a submodule of model (e.g. model.features[-1])")
    store: dict[str, Tensor] = {}

    def keep(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        if not isinstance(output, Tensor) or output.dim() != 4:
            raise ValueError(f"layer must output a feature map (B, K, h, w), got {getattr(output, 'shape', type(output))}")
        store["A"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(images)
            activations = store["A"]
            (grads,) = torch.autograd.grad(sign * _class_scores(logits, target), activations)
    finally:
        handle.remove()
    alpha = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, h, w) -> (B, K, 1, 1)
    cam = F.relu((alpha * activations).sum(dim=1)).detach()  # (B, K, h, w) -> (B, h, w)
    if upsample:
        cam = F.interpolate(cam[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam


class _PositiveGradient(torch.autograd.Function):
    """Identity on the way forward; on the way back only positive gradients pass."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.clamp(min=0)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every ReLU / ReLU6 of ``model`` back-propagates the guided way.

    A ReLU's usual backward keeps the gradient where its *input* was positive; the guided one also drops
    negative *gradients*: ``R_in = [x > 0] * [R_out > 0] * R_out``. Implemented by a forward hook that passes
    each activation's output through an identity whose backward clamps the gradient at 0; the ReLU's own
    backward then applies the ``[x > 0]`` mask. Hooks are removed on exit, even after an error.
    """
    handles = [m.register_forward_hook(lambda _m, _i, out: _PositiveGradient.apply(out))
               for m in model.modules() if isinstance(m, GUIDED_ACTIVATIONS)]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def guided_backprop(model: nn.Module, images: Tensor, target: int | Sequence[int] | Tensor) -> Tensor:
    """Guided backpropagation: the gradient of the class score w.r.t. the input through guided ReLUs.

    Introduced in the paper notebook ``lectures/papers/grad_cam.ipynb``.

    Args:
        model: returns class scores ``(B, num_classes)``; its ReLU/ReLU6 *modules* are made guided
            (functional ``F.relu`` calls are not seen).
        images (Tensor[B, C, H, W]): normalised as the model expects.
        target: one class for all images, or one per image.

    Returns:
        Tensor[B, C, H, W]: the guided gradient, detached.
    """
    target = _check_inputs(model, images, target)
    x = images.detach().clone().requires_grad_(True)
    with guided_relus(model), torch.enable_grad():
        (grad,) = torch.autograd.grad(_class_scores(model(x), target), x)
    return grad


def guided_grad_cam(model: nn.Module, layer: nn.Module, images: Tensor,
                    target: int | Sequence[int] | Tensor) -> Tensor:
    """Guided Grad-CAM: :func:`guided_backprop` times the up-sampled :func:`grad_cam` map, per pixel.

    Returns:
        Tensor[B, C, H, W].
    """
    return guided_backprop(model, images, target) * grad_cam(model, layer, images, target)[:, None]


def normalize_map(maps: Tensor) -> Tensor:
    """Scale each map of ``(B, ...)`` to ``[0, 1]`` by its own minimum and maximum (constant maps -> 0)."""
    check_tensor(maps, "maps")
    flat = maps.reshape(maps.shape[0], -1)  # (B, ...) -> (B, L)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).reshape(maps.shape)
