import pytest
import torch

import cvcourse.config as config


def test_pick_follows_environment(monkeypatch):
    monkeypatch.setenv("CVCOURSE_FAST", "1")
    assert config.pick(full=30, fast=2) == 2
    monkeypatch.setenv("CVCOURSE_FAST", "0")
    assert config.pick(full=30, fast=2) == 30


@pytest.mark.parametrize("value, fast", [("1", True), ("yes", True), (" ON ", True), ("0", False), ("false", False),
                                         ("off", False)])
def test_fast_mode_forced_by_the_environment(monkeypatch, value, fast):
    monkeypatch.setattr(config, "_gpu_available", lambda: not fast)  # a forced value wins over the hardware
    monkeypatch.setenv("CVCOURSE_FAST", value)
    assert config.is_fast() is fast
    assert config.describe_mode().startswith("fast mode" if fast else "full mode")


@pytest.mark.parametrize("gpu", [False, True])
def test_fast_mode_unset_means_fast_without_a_gpu(monkeypatch, gpu):
    monkeypatch.setattr(config, "_gpu_available", lambda: gpu)
    for unset in (None, "", "  "):
        if unset is None:
            monkeypatch.delenv("CVCOURSE_FAST", raising=False)
        else:
            monkeypatch.setenv("CVCOURSE_FAST", unset)
        assert config.is_fast() is not gpu
        assert config.pick(full=30, fast=2) == (30 if gpu else 2)
    assert ("no GPU found" in config.describe_mode()) is not gpu


def test_fast_mode_rejects_other_values(monkeypatch):
    monkeypatch.setenv("CVCOURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="CVCOURSE_FAST must be .* got 'maybe'"):
        config.is_fast()


def test_no_frozen_fast_flag():
    """One truth: the old import-time ``FAST`` constant could disagree with ``is_fast()``; it is gone."""
    import cvcourse

    assert not hasattr(config, "FAST") and not hasattr(cvcourse, "FAST")
    assert cvcourse.is_fast is config.is_fast


def test_gpu_detection_matches_device():
    assert config._gpu_available() is (config.device().type != "cpu")


def test_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    assert config.data_root() == tmp_path


def test_device_is_usable():
    d = config.device()
    assert torch.ones(2, device=d).sum().item() == 2.0


def test_seed_everything_reproducible():
    config.seed_everything(3)
    a = torch.rand(4)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
