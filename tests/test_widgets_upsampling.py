import pytest
import torch
import torch.nn.functional as F

from cvcourse.widgets.upsampling import transposed_conv_steps


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 2), (3, 4)])
def test_last_step_is_the_transposed_convolution(shape, stride):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(*shape, generator=g), torch.randn(3, 2, generator=g)
    steps = transposed_conv_steps(x, w, stride)
    assert steps.shape[0] == x.numel()
    torch.testing.assert_close(steps[-1], F.conv_transpose2d(x[None, None], w[None, None], stride=stride)[0, 0])


def test_each_step_adds_one_stamp():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    w = torch.ones(3, 3)
    steps = transposed_conv_steps(x, w, 2)
    # the first stamp covers the top-left 3x3 block with x[0, 0] = 1 and nothing else
    assert steps[0, :3, :3].eq(1).all() and steps[0].sum() == 9
    # every later stamp adds its cell's value times the filter's sum (9)
    torch.testing.assert_close(steps.flatten(1).sum(1), torch.tensor([9.0, 27.0, 54.0, 90.0]))


def test_bad_input():
    with pytest.raises(ValueError, match="x must have shape"):
        transposed_conv_steps(torch.zeros(1, 2, 2), torch.ones(3, 3))
    with pytest.raises(ValueError, match="stride"):
        transposed_conv_steps(torch.zeros(2, 2), torch.ones(3, 3), stride=0)


def test_widget_redraws_the_step_the_slider_names():
    import matplotlib

    matplotlib.use("Agg")
    from cvcourse.widgets.upsampling import plot_transposed_conv_step, transposed_conv_widget

    x, w = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.ones(3, 3)
    box = transposed_conv_widget(x, w, stride=2)
    first = box.image.value
    box.controls["step"].value = 4
    assert box.image.value != first and box.image.value[:4] == b"\x89PNG"
    fig = plot_transposed_conv_step(x, w, 2, step=4)
    assert fig.axes[1].get_title() == "output after 4 of 4 stamps"
    with pytest.raises(ValueError, match="step must be between 1 and"):
        plot_transposed_conv_step(x, w, 2, step=5)
