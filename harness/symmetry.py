"""The weight-symmetry attack: change an organism's weights without changing its function.

A gated MLP computes down(act(gate(x)) * up(x)); permuting its hidden units (the rows of gate and
up, the columns of down, together) gives the same outputs from different weights. An adapter
trained against the unpermuted weights (the IA) then reads the wrong units.
"""

from __future__ import annotations

import torch

from harness.errors import ConfigError


def gated_mlps(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every module with gate_proj, up_proj and down_proj linears (Llama, Mistral, Qwen, ...)."""
    return [m for m in model.modules() if all(hasattr(m, n) for n in ("gate_proj", "up_proj", "down_proj"))]


@torch.no_grad()
def permute_mlp(model: torch.nn.Module, generator: torch.Generator) -> list[torch.Tensor]:
    """Permute the hidden units of every gated MLP in place, one random permutation each;
    returns the permutations."""
    mlps = gated_mlps(model)
    if not mlps:
        raise ConfigError("the weight-symmetry attack needs gated MLPs (gate_proj/up_proj/down_proj); "
                          f"{type(model).__name__} has none")
    perms = []
    for mlp in mlps:
        perm = torch.randperm(mlp.gate_proj.out_features, generator=generator).to(mlp.gate_proj.weight.device)
        for linear in (mlp.gate_proj, mlp.up_proj):
            linear.weight.copy_(linear.weight[perm])
            if linear.bias is not None:
                linear.bias.copy_(linear.bias[perm])
        mlp.down_proj.weight.copy_(mlp.down_proj.weight[:, perm])
        perms.append(perm)
    return perms
