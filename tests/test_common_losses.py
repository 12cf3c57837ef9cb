"""Shared GAN regularisers against closed forms."""

from __future__ import annotations

import torch

from methods.common.losses import gradient_penalty, r1_penalty


def test_gradient_penalty_of_a_linear_critic_is_its_closed_form():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731  grad = w everywhere
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    expected = (w.norm() - 1) ** 2
    assert torch.allclose(gradient_penalty(critic, real, fake), expected, atol=1e-5)
    with_head = lambda x: (critic(x), torch.zeros(x.shape[0], 2))  # noqa: E731  (adv, cls) tuple critic
    assert torch.allclose(gradient_penalty(with_head, real, fake), expected, atol=1e-5)
    unit = w / w.norm()
    assert gradient_penalty(lambda x: (x * unit).flatten(1).sum(1), real, fake) < 1e-10


def test_gradient_penalty_is_differentiable_in_the_critic():
    conv = torch.nn.Conv2d(3, 1, 3)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    gradient_penalty(conv, real, fake).backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_r1_penalty_of_a_linear_critic():
    w = torch.randn(3, 4, 4)
    x = torch.randn(6, 3, 4, 4, requires_grad=True)
    logits = (x * w).flatten(1).sum(1)
    assert torch.allclose(r1_penalty(logits, x), 0.5 * w.pow(2).sum(), atol=1e-5)
