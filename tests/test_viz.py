"""Tests of cvcourse.viz: every helper returns the figure/axes it drew, with the expected content."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from cvcourse.viz import (  # noqa: E402
    PALETTE,
    colorize_mask,
    draw_boxes,
    normalize_filters,
    overlay_mask,
    plot_history,
    show_detections,
    show_feature_maps,
    show_filters,
    show_images,
    to_numpy_image,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_to_numpy_image_layouts():
    t = torch.rand(3, 5, 7)
    np.testing.assert_allclose(to_numpy_image(t), t.permute(1, 2, 0).numpy())
    assert to_numpy_image(torch.rand(1, 5, 7)).shape == (5, 7)
    u8 = np.full((4, 6, 3), 255, dtype=np.uint8)
    assert to_numpy_image(u8).max() == 1.0
    assert to_numpy_image(torch.rand(3, 4, 4, requires_grad=True)).shape == (4, 4, 3)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_numpy_image(torch.rand(5, 4, 4))
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        to_numpy_image([[0.0]])


@pytest.mark.parametrize("n, ncols", [(1, 8), (5, 3), (16, 8)])
def test_show_images_one_axis_per_image(n, ncols):
    images = torch.rand(n, 3, 8, 8)
    titles = [f"img {i}" for i in range(n)]
    fig = show_images(images, titles=titles, ncols=ncols)
    assert len(fig.axes) == n
    assert [ax.get_title() for ax in fig.axes] == titles
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), images[0].permute(1, 2, 0).numpy())


def test_show_images_mixed_inputs_and_errors():
    fig = show_images([np.zeros((6, 6, 3), dtype=np.uint8), torch.rand(6, 6)])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="2 titles for 1 images"):
        show_images([torch.rand(3, 4, 4)], titles=["a", "b"])
    with pytest.raises(ValueError, match="images is empty"):
        show_images([])


def test_draw_boxes_patches_follow_the_boxes():
    fig, ax = plt.subplots()
    boxes = torch.tensor([[1.0, 2.0, 5.0, 9.0], [0.0, 0.0, 3.0, 3.0]])
    patches = draw_boxes(ax, boxes, labels=torch.tensor([1, 3]), scores=torch.tensor([0.9, 0.25]),
                         class_names=("bg", "circle", "square", "triangle"))
    assert len(patches) == 2 and all(isinstance(p, Rectangle) for p in patches)
    assert patches[0].get_xy() == (1.0, 2.0) and patches[0].get_width() == 4.0 and patches[0].get_height() == 7.0
    assert patches[1].get_edgecolor()[:3] == pytest.approx(tuple(PALETTE[3]))  # colour of class 3
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["circle 0.90", "triangle 0.25"]
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        draw_boxes(ax, [[0, 0, 1]])
    with pytest.raises(ValueError, match="labels has 1 entries for 2 boxes"):
        draw_boxes(ax, boxes, labels=[1])


def test_show_detections_draws_image_and_boxes():
    image = torch.rand(3, 20, 30)
    ax = show_detections(image, torch.tensor([[2.0, 3.0, 10.0, 12.0]]), labels=[2], scores=[0.5])
    assert len(ax.patches) == 1 and len(ax.images) == 1
    assert ax.images[0].get_extent() == [0, 30, 20, 0]  # pixel edges line up with box coordinates
    ax = show_detections(image, torch.zeros(0, 4))
    assert len(ax.patches) == 0


def test_overlay_mask_uses_fixed_palette_and_transparent_background():
    image = torch.zeros(3, 4, 4)
    mask = torch.tensor([[0, 1, 2, 3]] * 4)
    ax = overlay_mask(image, mask, alpha=0.4, num_classes=4)
    rgba = np.asarray(ax.images[1].get_array())
    assert rgba.shape == (4, 4, 4)
    np.testing.assert_allclose(rgba[0, 2, :3], PALETTE[2], atol=1e-6)
    assert rgba[0, 0, 3] == 0.0 and rgba[0, 1, 3] == pytest.approx(0.4)
    np.testing.assert_array_equal(colorize_mask(mask)[..., :3], colorize_mask(mask.numpy())[..., :3])
    with pytest.raises(ValueError, match=r"mask values must lie in \[0, 2\]"):
        overlay_mask(image, mask, num_classes=3)
    with pytest.raises(ValueError, match="mask has size"):
        overlay_mask(torch.zeros(3, 5, 5), mask)


def test_show_feature_maps_caps_channels():
    fig = show_feature_maps(torch.randn(20, 6, 6), max_channels=16)
    assert len(fig.axes) == 16
    assert len(show_feature_maps(torch.randn(3, 6, 6)).axes) == 3
    with pytest.raises(ValueError, match=r"\(C, H, W\).*fmap\[0\]"):
        show_feature_maps(torch.randn(2, 3, 6, 6))


def test_normalize_filters_per_filter():
    w = torch.randn(5, 3, 3, 3) * torch.arange(1, 6).view(5, 1, 1, 1)
    w[4] = 7.0  # a constant filter
    n = normalize_filters(w)
    flat = n.flatten(1)
    torch.testing.assert_close(flat[:4].min(1).values, torch.zeros(4))
    torch.testing.assert_close(flat[:4].max(1).values, torch.ones(4))
    assert bool((n[4] == 0.5).all())
    # the order inside each filter is kept (an affine map with positive slope)
    assert torch.equal(flat[0].argsort(), w[0].flatten().argsort())


def test_show_filters_rgb_and_grey():
    fig = show_filters(torch.randn(10, 3, 5, 5))
    assert len(fig.axes) == 10
    assert fig.axes[0].images[0].get_array().shape == (5, 5, 3)
    fig = show_filters(torch.randn(70, 8, 3, 3), max_filters=64)
    assert len(fig.axes) == 64 and fig.axes[0].images[0].get_array().shape == (3, 3)
    with pytest.raises(ValueError, match=r"\(O, I, k, k\)"):
        show_filters(torch.randn(3, 3, 3))


def test_plot_history_compares_runs():
    relu = {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4], "train_acc": [0.5, 0.7, 0.8],
            "val_acc": [0.4, 0.6, 0.7]}
    tanh = {"train_loss": [1.0, 0.8, 0.7], "train_acc": [0.5, 0.55, 0.6]}
    fig = plot_history(relu, tanh, metrics=("loss", "acc"), labels=["ReLU", "tanh"])
    assert len(fig.axes) == 2
    loss_ax = fig.axes[0]
    assert len(loss_ax.lines) == 3  # ReLU train + val, tanh train
    assert [line.get_label() for line in loss_ax.lines] == ["ReLU (train)", "ReLU (val)", "tanh (train)"]
    np.testing.assert_array_equal(loss_ax.lines[1].get_ydata(), [1.1, 0.6, 0.4])
    assert len(plot_history(relu).axes) == 1
    with pytest.raises(ValueError, match="no history has 'train_iou'"):
        plot_history(relu, metrics=("iou",))
    with pytest.raises(ValueError, match="1 labels for 2 histories"):
        plot_history(relu, tanh, labels=["x"])


def test_plot_history_epoch_ticks_are_whole_numbers():
    fig = plot_history({"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6]})
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)  # matplotlib's default puts ticks at 1.5, 2.5
