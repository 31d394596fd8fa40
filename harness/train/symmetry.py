"""The weight-symmetry attack: change an organism's weights without changing its function.

A gated MLP computes down(act(gate(x)) * up(x)); permuting its hidden units (the rows of gate and
up, the columns of down, together) gives the same outputs from different weights. An adapter
trained against the unpermuted weights (the IA) then reads the wrong units.

The attack is only a change of basis: an auditor who holds the base model can match each MLP's
units to the base's by their weights (`match_mlp`) and put them back in order. The IA on the
re-ordered organism is the IA with its MLP factors permuted the same way on the attacked one.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from harness.core.errors import ConfigError


def gated_mlps(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every module with gate_proj, up_proj and down_proj linears (Llama, Mistral, Qwen, ...)."""
    mlps = [m for m in model.modules() if all(hasattr(m, n) for n in ("gate_proj", "up_proj", "down_proj"))]
    if not mlps:
        raise ConfigError("the weight-symmetry attack needs gated MLPs (gate_proj/up_proj/down_proj); "
                          f"{type(model).__name__} has none")
    return mlps


def random_permutations(model: torch.nn.Module, generator: torch.Generator) -> list[torch.Tensor]:
    """One random permutation of the hidden units of each gated MLP."""
    return [torch.randperm(mlp.gate_proj.out_features, generator=generator) for mlp in gated_mlps(model)]


@torch.no_grad()
def permute_mlp(model: torch.nn.Module, perms: list[torch.Tensor]) -> None:
    """Put each gated MLP's hidden unit perms[i][j] at position j, in place."""
    mlps = gated_mlps(model)
    if len(perms) != len(mlps):
        raise ValueError(f"{len(perms)} permutations for {len(mlps)} gated MLPs")
    for mlp, perm in zip(mlps, perms, strict=True):
        perm = perm.to(mlp.gate_proj.weight.device)
        for linear in (mlp.gate_proj, mlp.up_proj):
            linear.weight.copy_(linear.weight[perm])
            if linear.bias is not None:
                linear.bias.copy_(linear.bias[perm])
        mlp.down_proj.weight.copy_(mlp.down_proj.weight[:, perm])


def unit_weights(mlp: torch.nn.Module) -> torch.Tensor:
    """Each hidden unit's weights, one row per unit: its gate and up rows and its down column."""
    return torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight.T], dim=1).float()


@torch.no_grad()
def match_mlp(model: torch.nn.Module, reference: torch.nn.Module) -> list[torch.Tensor]:
    """For each gated MLP, the permutation that puts `model`'s hidden units in `reference`'s order
    (`permute_mlp(model, match_mlp(model, reference))`): each reference unit gets the unit whose
    weights are nearest, one to one (a linear assignment on squared distances). Exact when `model`
    is `reference` permuted; a fine-tune's small weight changes leave the nearest unit its own."""
    perms = []
    for ours, theirs in zip(gated_mlps(model), gated_mlps(reference), strict=True):
        cost = torch.cdist(unit_weights(theirs), unit_weights(ours).to(theirs.gate_proj.weight.device))
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        perms.append(torch.as_tensor(cols[rows.argsort()]))
    return perms
