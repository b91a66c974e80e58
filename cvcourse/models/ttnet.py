"""TTNet (Voeikov, Falaleev, Baikulov, 2020): one network for the ball, the bounces and the table in table-tennis video.

Paper notebook ``lectures/papers/ttnet.ipynb``. The input is a stack of 9 consecutive frames, concatenated along the
channels (27 channels), so plain 2-D convolutions see time. One shared encoder feeds three heads:

- **ball position**: two vectors of scores, one per pixel column (x) and one per pixel row (y), trained against
  1-D Gaussians centred on the true position (:func:`gaussian_target`) and decoded by the arg-max
  (:func:`decode_position`);
- **event spotting**: is there a bounce at the middle (5th) frame of the stack? one logit;
- **segmentation**: a U-Net-style decoder with skip connections, classes per pixel of the last frame.

As in the paper, the event is the middle frame's and the ball and the mask are the last (9th) frame's. Deviations
(all for size): one stage instead of the paper's global + local (crop) stages, fixed loss weights instead of learned
ones, softmax + cross-entropy on normalised Gaussians instead of the paper's per-entry BCE, cross-entropy (no Dice)
for the masks, hard 0/1 event targets instead of the paper's smoothed ones.

Letter legend: B batch, F frames per stack (9), H, W height and width, K segmentation classes.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from cvcourse._checks import check_tensor
from cvcourse.data.video import table_tennis_clip
from cvcourse.train import MeanIoU

__all__ = ["gaussian_target", "decode_position", "TTNet", "ttnet_loss", "table_tennis_stacks", "ttnet_evaluate"]


def gaussian_target(centers: Tensor, length: int, sigma: float = 1.0) -> Tensor:
    """1-D Gaussian targets along one image axis, normalised to sum to 1 (the TTNet ball target).

    Entry ``i`` stands for the pixel ``[i, i + 1)`` with centre ``i + 0.5`` (the course's continuous coordinates):
    ``g[n, i] = exp(-(i + 0.5 - c_n)^2 / (2 sigma^2)) / Z_n``, ``Z_n`` the sum over ``i``.

    Args:
        centers (Tensor[N]): positions in pixels along the axis, in ``[0, length]``.
        length: L, the number of pixels along the axis.
        sigma: the Gaussian's standard deviation in pixels, > 0.

    Returns:
        Tensor[N, L] float, each row a probability vector.

    Raises:
        ValueError: for a non-1-D ``centers``, ``length < 1``, ``sigma <= 0`` or a centre outside ``[0, length]``.
    """
    check_tensor(centers, "centers")
    if centers.dim() != 1:
        raise ValueError(f"centers must have shape (N,), got {tuple(centers.shape)}")
    if int(length) != length or length < 1:
        raise ValueError(f"length must be an integer >= 1 (pixels), got {length!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma!r}")
    if centers.numel() and (centers.min() < 0 or centers.max() > length):
        raise ValueError(f"centers must lie in [0, {length}], got values in [{centers.min():.2f}, {centers.max():.2f}]")
    pos = torch.arange(int(length), dtype=torch.float32, device=centers.device) + 0.5        # (L,)
    g = torch.exp(-((pos[None] - centers.float()[:, None]) ** 2) / (2 * sigma ** 2))           # (N, L)
    return g / g.sum(dim=1, keepdim=True)


def decode_position(scores_x: Tensor, scores_y: Tensor) -> Tensor:
    """Ball position ``(x, y)`` from the two score vectors: the centre of the arg-max pixel along each axis.

    Args:
        scores_x (Tensor[N, W]): scores (logits or probabilities) per pixel column.
        scores_y (Tensor[N, H]): scores per pixel row.

    Returns:
        Tensor[N, 2] float: ``(argmax_x + 0.5, argmax_y + 0.5)``.
    """
    check_tensor(scores_x, "scores_x")
    check_tensor(scores_y, "scores_y")
    if scores_x.dim() != 2 or scores_y.dim() != 2 or scores_x.shape[0] != scores_y.shape[0]:
        raise ValueError(f"scores_x must be (N, W) and scores_y (N, H) with the same N, got {tuple(scores_x.shape)} "
                         f"and {tuple(scores_y.shape)}")
    return torch.stack([scores_x.argmax(1), scores_y.argmax(1)], dim=1).float() + 0.5


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TTNet(nn.Module):
    """A small TTNet: 2-D convolutions on ``F`` stacked RGB frames, a shared encoder and three heads.

    Encoder: four stages of ``conv3x3-BN-ReLU`` then 2x max-pool, widths ``width * (1, 2, 4, 4)``, so a ``(H, W)``
    input is seen at ``(H/16, W/16)`` (H and W must be multiples of 16). Heads:

    - ``ball``: flatten the last map, a hidden linear layer (dropout), then ``W`` x-scores and ``H`` y-scores;
    - ``event``: the same flattened map, its own hidden layer, one bounce logit (middle frame);
    - ``seg``: two upsampling steps with the encoder's skips (U-Net style) to half resolution, as in the paper, a
      1x1 conv to ``num_classes`` logits, bilinearly upsampled to the full ``(H, W)`` (last frame).

    Shape: ``(B, 3 F, H, W) -> {"ball_x": (B, W), "ball_y": (B, H), "event": (B,), "seg": (B, K, H, W)}``.
    """

    def __init__(self, frames: int = 9, size: tuple[int, int] = (48, 64), width: int = 16, num_classes: int = 3,
                 hidden: int = 128) -> None:
        super().__init__()
        h, w = size
        if h % 16 or w % 16 or h < 16 or w < 16:
            raise ValueError(f"size (H, W) must be multiples of 16 (the encoder pools 4 times), got {size}")
        if frames < 1 or width < 1 or num_classes < 2:
            raise ValueError(f"need frames >= 1, width >= 1, num_classes >= 2, got {frames}, {width}, {num_classes}")
        self.frames, self.size = frames, (h, w)
        c = [width, 2 * width, 4 * width, 4 * width]
        self.encoder = nn.ModuleList([_conv(3 * frames, c[0]), _conv(c[0], c[1]), _conv(c[1], c[2]), _conv(c[2], c[3])])
        flat = c[3] * (h // 16) * (w // 16)
        self.ball = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1),
                                  nn.Linear(hidden, w + h))
        self.event = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden // 2), nn.ReLU(inplace=True), nn.Dropout(0.1),
                                   nn.Linear(hidden // 2, 1))
        self.up = nn.ModuleList([_conv(c[3] + c[2], c[2]), _conv(c[2] + c[1], c[1])])
        self.seg = nn.Conv2d(c[1], num_classes, 1)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The encoder's maps before each pooling, then the last pooled map: ``[(H), (H/2), (H/4), (H/8), (H/16)]``."""
        if x.dim() != 4 or x.shape[1] != 3 * self.frames or tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"x must be (B, {3 * self.frames}, {self.size[0]}, {self.size[1]}): {self.frames} RGB "
                             f"frames stacked on the channels, got {tuple(x.shape)}")
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
            x = F.max_pool2d(x, 2)
        return feats + [x]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f0, f1, f2, f3, bottom = self.forward_features(x)
        h, w = self.size
        scores = self.ball(bottom)                                       # (B, W + H)
        event = self.event(bottom).squeeze(1)                            # (B, 1) -> (B,)
        y = f3                                                           # (B, 4w, H/8, W/8)
        for skip, conv in zip((f2, f1), self.up):                        # -> (B, 4w, H/4, W/4) -> (B, 2w, H/2, W/2)
            y = conv(torch.cat([skip, F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)], 1))
        seg = F.interpolate(self.seg(y), size=(h, w), mode="bilinear", align_corners=False)  # (B, K, H/2, W/2) -> (B, K, H, W)
        return {"ball_x": scores[:, :w], "ball_y": scores[:, w:], "event": event, "seg": seg}


def ttnet_loss(outputs: dict[str, Tensor], targets: dict[str, Tensor], sigma: float = 1.0,
               event_pos_weight: float = 1.0, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, Tensor]:
    """The three TTNet losses, as a dict (``cvcourse.train.fit``'s ``step_fn`` sums them).

    - ``ball``: cross-entropy between the softmax of the x (and y) scores and :func:`gaussian_target` of the true
      x (and y), summed over the two axes;
    - ``event``: binary cross-entropy of the bounce logit (``event_pos_weight`` up-weights the rare bounces);
    - ``seg``: per-pixel cross-entropy.

    Args:
        outputs: :class:`TTNet`'s output.
        targets: ``{"ball": (B, 2) (x, y) px, "event": (B,) 0/1, "mask": (B, H, W) int64}``.
        sigma: the Gaussian targets' standard deviation in pixels.
        event_pos_weight: ``pos_weight`` of the event BCE.
        weights: multipliers of the ball, event and seg terms.
    """
    w, h = outputs["ball_x"].shape[1], outputs["ball_y"].shape[1]
    tx = gaussian_target(targets["ball"][:, 0], w, sigma)
    ty = gaussian_target(targets["ball"][:, 1], h, sigma)
    ball = (-(tx * F.log_softmax(outputs["ball_x"], 1)).sum(1) - (ty * F.log_softmax(outputs["ball_y"], 1)).sum(1)).mean()
    pw = torch.tensor(event_pos_weight, device=outputs["event"].device)
    event = F.binary_cross_entropy_with_logits(outputs["event"], targets["event"].float(), pos_weight=pw)
    seg = F.cross_entropy(outputs["seg"], targets["mask"])
    return {"ball": weights[0] * ball, "event": weights[1] * event, "seg": weights[2] * seg}


def table_tennis_stacks(n_clips: int, frames: int = 40, size: tuple[int, int] = (48, 64), window: int = 9,
                        seed: int = 0, noise: float = 0.03) -> TensorDataset:
    """Every ``window``-frame stack of ``n_clips`` synthetic rallies (:func:`cvcourse.data.video.table_tennis_clip`).

    Clip ``k`` has seed ``seed * 100003 + k``. Items are ``(stack, ball, event, mask)``: the stack ``(3 window, H, W)``
    (frames concatenated on the channels, oldest first), the last frame's ball ``(2,)`` and mask ``(H, W)``, and
    whether the middle frame is a bounce (float 0/1).

    Returns:
        a ``TensorDataset`` of ``n_clips * (frames - window + 1)`` items.
    """
    if window < 3 or window % 2 == 0 or window > frames:
        raise ValueError(f"window must be odd, >= 3 and <= frames ({frames}), got {window}")
    stacks, balls, events, masks = [], [], [], []
    for k in range(n_clips):
        c = table_tennis_clip(frames, size, seed=seed * 100003 + k, noise=noise)
        idx = torch.arange(frames - window + 1)[:, None] + torch.arange(window)[None]          # (S, window)
        stacks.append(c.frames[idx].flatten(1, 2))            # (S, window, 3, H, W) -> (S, 3 window, H, W)
        balls.append(c.ball[idx[:, -1]])
        events.append(c.events[idx[:, window // 2]].float())
        masks.append(c.masks[idx[:, -1]])
    return TensorDataset(torch.cat(stacks), torch.cat(balls), torch.cat(events), torch.cat(masks))


@torch.no_grad()
def ttnet_evaluate(model: TTNet, data: TensorDataset, batch_size: int = 64, device: torch.device | str = "cpu") -> dict[str, float]:
    """Ball error, event accuracy and segmentation IoU of ``model`` on :func:`table_tennis_stacks` data.

    Returns:
        ``{"ball_error_px": mean Euclidean distance of the decoded position, "ball_within_2px": fraction within 2 px,
        "event_acc": accuracy of ``logit > 0``, "event_balanced_acc": mean of the recalls of bounce and no-bounce,
        "seg_miou": mean IoU over the classes (exact, over the whole set), "seg_iou_table": IoU of class 1}``.
    """
    model.eval().to(device)
    miou = MeanIoU(model.seg.out_channels)
    errors, hits, truth = [], [], []
    for stack, ball, event, mask in DataLoader(data, batch_size=batch_size):
        out = model(stack.to(device))
        errors.append((decode_position(out["ball_x"], out["ball_y"]).cpu() - ball).norm(dim=1))
        hits.append(out["event"].cpu() > 0)
        truth.append(event > 0.5)
        miou.update(out["seg"].cpu(), mask)
    err, pred, true = torch.cat(errors), torch.cat(hits), torch.cat(truth)
    recalls = [float((pred[true == v] == v).float().mean()) for v in (True, False) if (true == v).any()]
    iou = miou.per_class()
    return {"ball_error_px": float(err.mean()), "ball_within_2px": float((err <= 2).float().mean()),
            "event_acc": float((pred == true).float().mean()), "event_balanced_acc": sum(recalls) / len(recalls),
            "seg_miou": miou.compute(), "seg_iou_table": float(iou[1])}
