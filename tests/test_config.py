import importlib

import torch

import cvcourse.config as config


def test_pick_follows_environment(monkeypatch):
    monkeypatch.setenv("CVCOURSE_FAST", "1")
    assert config.pick(full=30, fast=2) == 2
    monkeypatch.setenv("CVCOURSE_FAST", "0")
    assert config.pick(full=30, fast=2) == 30


def test_fast_flag_read_at_import(monkeypatch):
    monkeypatch.setenv("CVCOURSE_FAST", "yes")
    assert importlib.reload(config).FAST is True
    monkeypatch.delenv("CVCOURSE_FAST")
    assert importlib.reload(config).FAST is False


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
