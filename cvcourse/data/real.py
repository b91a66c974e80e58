"""Real data sets for students who are online: CIFAR-10, Oxford-IIIT Pet (segmentation), Penn-Fudan
pedestrians (detection / instance segmentation).

Used by the optional "on real data" sections of the CNN, segmentation and detection lectures. Files
are cached under :func:`cvcourse.config.data_root` (``CVCOURSE_DATA``, default ``~/.cvcourse``) and
are downloaded only when the caller passes ``download=True``. When the files are missing and cannot
be downloaded, a :class:`DatasetUnavailableError` says so and names the offline alternative; there is
never a silent fallback to another data set.

Letters: H, W = image height and width, S = resized image size, K = number of pedestrians.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cvcourse import config

#: Official address of the Penn-Fudan pedestrian database.
PENN_FUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"

#: Seconds a download may wait on a silent connection before giving up.
DOWNLOAD_TIMEOUT = 10.0


class DatasetUnavailableError(RuntimeError):
    """A real data set is neither on disk nor downloadable (usually: no internet)."""


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Temporarily bound how long a download may hang (torchvision's downloader sets no timeout)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _root(root: str | Path | None, name: str) -> Path:
    return Path(root).expanduser() if root is not None else config.data_root() / name


def _unavailable(title: str, root: Path, download: bool, alternative: str, cause: BaseException) -> DatasetUnavailableError:
    how = (
        "downloading it failed (it needs internet)"
        if download
        else "it is not on disk; pass download=True (needs internet)"
    )
    return DatasetUnavailableError(
        f"{title} is unavailable: {how}, or put the files at {root}. "
        f"Offline, use {alternative} instead. (cause: {type(cause).__name__}: {cause})"
    )


def _load(factory: Callable[[], Any], title: str, root: Path, download: bool, alternative: str) -> Any:
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            return factory()
    except (RuntimeError, OSError, ValueError) as exc:  # torchvision: RuntimeError; urllib: URLError (OSError)
        raise _unavailable(title, root, download, alternative, exc) from exc


def _pil_to_tensor(image: Any) -> Tensor:
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0)  # (H, W, 3) -> (3, H, W)


def cifar10(train: bool = True, download: bool = False, root: str | Path | None = None) -> Dataset:
    """CIFAR-10 (60,000 32x32 colour images, 10 classes) through ``torchvision.datasets.CIFAR10``.

    Introduced in the CNN lectures as the real-data counterpart of :class:`ShapesClassification`.

    Args:
        train: the 50,000-image training split or the 10,000-image test split.
        download: fetch the archive (about 170 MB) if it is missing.
        root: cache folder (default ``data_root() / "cifar10"``).

    Returns:
        A Dataset of ``(image Tensor[3, 32, 32] float in [0, 1], label int)``; ``.classes`` names them.

    Raises:
        DatasetUnavailableError: files missing and not downloadable.
    """
    from torchvision.datasets import CIFAR10

    path = _root(root, "cifar10")
    return _load(
        lambda: CIFAR10(str(path), train=train, download=download, transform=_pil_to_tensor),
        "CIFAR-10",
        path,
        download,
        "cvcourse.data.ShapesClassification or cvcourse.data.DigitsDataset",
    )


class _PetsSegmentation(Dataset):
    """Oxford-IIIT Pet images with binary pet / background masks, resized to ``S x S``."""

    def __init__(self, base: Dataset, image_size: int) -> None:
        self.base = base
        self.image_size = int(image_size)
        self.classes = ("background", "pet")

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, trimap = self.base[index]
        x = _pil_to_tensor(image)[None]  # (3, H, W) -> (1, 3, H, W)
        t = torch.from_numpy(np.asarray(trimap, dtype=np.int64).copy())[None, None].float()  # (H, W) -> (1, 1, H, W)
        size = (self.image_size, self.image_size)
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        t = torch.nn.functional.interpolate(t, size=size, mode="nearest")[0, 0].long()
        mask = (t != 2).long()  # trimap: 1 = pet, 2 = background, 3 = pet outline -> 1, 0, 1
        return x.clamp(0.0, 1.0), mask


def oxford_pets(
    split: str = "trainval", image_size: int = 128, download: bool = False, root: str | Path | None = None
) -> Dataset:
    """Oxford-IIIT Pet for segmentation, through ``torchvision.datasets.OxfordIIITPet``.

    Introduced in the segmentation lecture as the real-data counterpart of :class:`ShapesSegmentation`.

    Args:
        split: ``"trainval"`` (3,680 images) or ``"test"`` (3,669 images).
        image_size: ``S``; images are resized bilinearly and masks by nearest neighbour to ``S x S``.
        download: fetch the archives (about 800 MB) if missing.
        root: cache folder (default ``data_root() / "oxford_pets"``).

    Returns:
        A Dataset of ``(image Tensor[3, S, S] float in [0, 1], mask Tensor[S, S] int64)`` with
        0 = background and 1 = pet (the trimap's outline pixels count as pet).

    Raises:
        DatasetUnavailableError: files missing and not downloadable.
    """
    from torchvision.datasets import OxfordIIITPet

    path = _root(root, "oxford_pets")
    base = _load(
        lambda: OxfordIIITPet(str(path), split=split, target_types="segmentation", download=download),
        "Oxford-IIIT Pet",
        path,
        download,
        "cvcourse.data.ShapesSegmentation",
    )
    return _PetsSegmentation(base, image_size)


class PennFudanPed(Dataset):
    """Penn-Fudan pedestrians (170 images, 345 people) with instance masks, torchvision-style targets.

    Introduced in the detection lecture (Mask R-CNN fine-tuning). torchvision has no loader for it;
    this one reads the official folder layout ``PennFudanPed/PNGImages/*.png`` and
    ``PennFudanPed/PedMasks/*_mask.png`` (mask value ``i`` = pedestrian ``i``, 0 = background).

    Args:
        root: folder that holds (or will hold) ``PennFudanPed/`` (default ``data_root() / "penn_fudan"``).
        download: fetch the zip (about 50 MB) from :data:`PENN_FUDAN_URL` if the folder is missing.

    Items:
        ``(image, target)``: image Tensor[3, H, W] float in [0, 1]; target dict with ``boxes``
        Tensor[K, 4] float32 ``(x1, y1, x2, y2)`` (tight box of each mask, ``x2 = last column + 1``),
        ``labels`` Tensor[K] int64 (all 1 = person) and ``masks`` Tensor[K, H, W] uint8. Use
        :func:`collate_detection` in the ``DataLoader``.

    Raises:
        DatasetUnavailableError: files missing and not downloadable.
    """

    classes = ("background", "person")

    def __init__(self, root: str | Path | None = None, download: bool = False) -> None:
        self.root = _root(root, "penn_fudan")
        folder = self.root / "PennFudanPed"
        if not (folder / "PNGImages").is_dir() and download:

            def fetch() -> None:
                from torchvision.datasets.utils import download_and_extract_archive

                download_and_extract_archive(PENN_FUDAN_URL, download_root=str(self.root))

            _load(fetch, "Penn-Fudan", self.root, download, "cvcourse.data.ShapesDetection")
        images = sorted((folder / "PNGImages").glob("*.png"))
        if not images:
            cause = FileNotFoundError(f"no PNG images under {folder / 'PNGImages'}")
            raise _unavailable("Penn-Fudan", self.root, download, "cvcourse.data.ShapesDetection", cause)
        self.images = images
        self.masks = [folder / "PedMasks" / f"{p.stem}_mask.png" for p in images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        from PIL import Image

        from cvcourse.data.shapes import masks_to_boxes

        image = _pil_to_tensor(Image.open(self.images[index]))
        ids = torch.from_numpy(np.asarray(Image.open(self.masks[index]), dtype=np.int64).copy())  # (H, W)
        obj = ids.unique()
        obj = obj[obj != 0]
        masks = (ids[None] == obj[:, None, None]).to(torch.uint8)  # (K, H, W)
        target = {
            "boxes": masks_to_boxes(masks),
            "labels": torch.ones(len(obj), dtype=torch.int64),
            "masks": masks,
        }
        return image, target


def penn_fudan(download: bool = False, root: str | Path | None = None) -> PennFudanPed:
    """The Penn-Fudan data set (see :class:`PennFudanPed`)."""
    return PennFudanPed(root=root, download=download)
