"""Batched organism training: K LoRA organisms trained together, each step one forward/backward
over all of them (a few passes by row length in a large batch, see length_buckets).

Every LoRA target layer of the frozen base model gets the K organisms' factors stacked,
A: [K, r, in] and B: [K, out, r]. A batch holds K equal blocks of rows, block k being
organism k's batch, and a forward hook adds each block's own low-rank update to the layer's
output (one batched matmul per factor). The loss is the sum over organisms of each one's mean
token loss, and gradients are clipped per organism, so with AdamW (elementwise) every organism
follows the same updates as if it were trained alone: only the order of floating-point sums
differs. Each organism is then written out as an ordinary peft LoRA adapter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file

from harness.core import timing
from harness.train.training import Encoded, collate

PREFIX = "base_model.model."
"""What peft puts before a base model's module names."""


class StackedLoRA:
    """K LoRA adapters on one base model, as stacked factors with forward hooks on the target
    layers. A batch is cut into equal blocks of rows, block j going through adapter
    `blocks[j]` (`select`); by default there are K blocks, block k for adapter k."""

    def __init__(self, base_model, names: list[str], a: list[torch.Tensor], b: list[torch.Tensor],
                 scaling: list[float], trainable: bool, lora_config=None):
        """Factors per target layer (`names`, the base model's module names): a [K, r, in],
        b [K, out, r], and the layer's scaling; `lora_config` makes peft copies (`peft_models`)."""
        self.base_model, self.names, self.scaling, self.lora_config = base_model, names, scaling, lora_config
        self.k = a[0].shape[0]
        self.a = [torch.nn.Parameter(t, requires_grad=trainable) for t in a]
        self.b = [torch.nn.Parameter(t, requires_grad=trainable) for t in b]
        # frozen factors: per layer, the adapters that leave it as it is (no factors there), so a batch
        # of only those skips the layer's update (an organism on the upper layers, under no IA)
        self.absent = None if trainable else [{j for j in range(self.k) if not (a_i[j].any() and b_i[j].any())}
                                              for a_i, b_i in zip(a, b, strict=True)]
        self.select(range(self.k))
        self.hooks = [base_model.get_submodule(name).register_forward_hook(self._hook(i))
                      for i, name in enumerate(names)]

    @classmethod
    def fresh(cls, base_model, lora_config, k: int, seed: int) -> StackedLoRA:
        """K new adapters, each initialized as a peft LoRA made after `torch.manual_seed(seed)`
        (so an organism alone trains as peft would train it)."""
        torch.manual_seed(seed)
        peft_model = get_peft_model(base_model, lora_config)
        names, a, b, scaling = [], [], [], []
        for name, layer in peft_model.named_modules():
            if isinstance(layer, LoraLayer):
                names.append(name.removeprefix(PREFIX))
                a.append(layer.lora_A["default"].weight.detach().unsqueeze(0).repeat(k, 1, 1).contiguous())
                b.append(layer.lora_B["default"].weight.detach().unsqueeze(0).repeat(k, 1, 1).contiguous())
                scaling.append(layer.scaling["default"])
        peft_model.unload()
        return cls(base_model, names, a, b, scaling, trainable=True, lora_config=lora_config)

    @classmethod
    def load(cls, base_model, folders: Sequence[Path]) -> StackedLoRA:
        """Saved peft LoRA adapters, frozen, plus one more slot of zeros (no adapter) at index K."""
        return cls.sums(base_model, [[folder] for folder in folders] + [[]])

    @classmethod
    def sums(cls, base_model, slots: Sequence[Sequence[Path]]) -> StackedLoRA:
        """Slot j the sum of the saved peft LoRA adapters `slots[j]` (their factors side by side
        along the rank: peft's `cat` combination, e.g. an organism and the IA), frozen; an empty
        slot is no adapter. Ranks may differ (padded with zeros), scalings are folded into B."""
        read = {folder: read_adapter(folder) for slot in slots for folder in slot}
        names = sorted({name for adapter in read.values() for name in adapter})
        a, b = [], []
        for name in names:
            parts = [[read[folder][name] for folder in slot if name in read[folder]] for slot in slots]
            ref = next(p[0] for p in parts if p)
            rank = max(sum(a_k.shape[0] for a_k, _ in p) for p in parts)
            a_n = ref[0].new_zeros(len(slots), rank, ref[0].shape[1])
            b_n = ref[1].new_zeros(len(slots), ref[1].shape[0], rank)
            for j, p in enumerate(parts):
                if p:
                    r = sum(a_k.shape[0] for a_k, _ in p)
                    a_n[j, :r] = torch.cat([a_k for a_k, _ in p])
                    b_n[j, :, :r] = torch.cat([b_k for _, b_k in p], dim=1)
            device = base_model.get_submodule(name).weight.device  # a model spread over devices: the layer's own
            a.append(a_n.to(device))
            b.append(b_n.to(device))
        return cls(base_model, names, a, b, [1.0] * len(names), trainable=False)

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.a + self.b

    def select(self, blocks: Sequence[int]) -> None:
        """Route the next batches' rows: cut into len(blocks) equal blocks, block j through
        adapter blocks[j]."""
        self.blocks = torch.tensor(list(blocks), device=self.a[0].device)
        chosen = set(self.blocks.tolist())
        self.idle = [chosen <= absent for absent in self.absent] if self.absent is not None else None

    def _hook(self, i: int):
        def add_update(_module, inputs, output):
            if self.idle is not None and self.idle[i]:
                return None  # no selected adapter has factors on this layer
            n, x = len(self.blocks), inputs[0]
            blocks = self.blocks if self.blocks.device == self.a[i].device else self.blocks.to(self.a[i].device)
            a, b = self.a[i][blocks], self.b[i][blocks]
            # factors stay float32 on a bfloat16 base (peft's autocast_adapter_dtype); no-ops in float32
            low = torch.bmm(x.reshape(n, -1, x.shape[-1]).to(a.dtype), a.transpose(1, 2)) * self.scaling[i]
            update = torch.baddbmm(output.reshape(n, -1, output.shape[-1]).to(a.dtype), low, b.transpose(1, 2))
            return update.reshape(output.shape).to(output.dtype)

        return add_update

    def clip_grad_norms(self, max_norm: float = 1.0) -> None:
        """Clip each adapter's gradient to `max_norm` on its own (as torch's clip_grad_norm_
        would clip it alone)."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norms = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()  # [K]
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))

    def remove_hooks(self) -> None:
        """Detach from the base model (the stacked factors stay readable)."""
        for h in self.hooks:
            h.remove()
        self.hooks = []

    def peft_models(self) -> Iterator[PeftModel]:
        """Each adapter made by `fresh` in turn as a peft model on the base model (valid until
        the next one is asked for); the base model is left as it was."""
        self.remove_hooks()
        for k in range(self.k):
            model = get_peft_model(self.base_model, self.lora_config)
            layers = dict(model.named_modules())
            with torch.no_grad():
                for name, a, b in zip(self.names, self.a, self.b, strict=True):
                    layer = layers[PREFIX + name]
                    layer.lora_A["default"].weight.copy_(a[k])
                    layer.lora_B["default"].weight.copy_(b[k])
            model.eval()
            yield model
            model.unload()


def read_adapter(folder: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A plain peft LoRA adapter's factors by base module name: (A [r, in], B [out, r] times
    the adapter's scaling)."""
    cfg = json.loads((folder / "adapter_config.json").read_text())
    unsupported = [k for k in ("use_dora", "lora_bias", "fan_in_fan_out", "modules_to_save", "rank_pattern",
                               "alpha_pattern") if cfg.get(k)] + (["bias"] if cfg.get("bias", "none") != "none" else [])
    if cfg.get("peft_type") != "LORA" or unsupported:
        raise ValueError(f"{folder}: not a plain LoRA adapter ({', '.join(unsupported) or cfg.get('peft_type')})")
    weights = load_file(folder / "adapter_model.safetensors")
    out = {}
    for key, a in weights.items():
        if key.endswith(".lora_A.weight"):
            name = key.removesuffix(".lora_A.weight").removeprefix(PREFIX)
            r = a.shape[0]
            scaling = cfg["lora_alpha"] / (r**0.5 if cfg.get("use_rslora") else r)
            out[name] = (a, weights[key.replace(".lora_A.", ".lora_B.")] * scaling)
    return out


def block_losses(model, batch: dict[str, torch.Tensor], k: int, tokens: torch.Tensor | None = None) -> torch.Tensor:
    """The mean token loss of each of the k equal blocks of rows, shape [k] (causal LM, labels
    -100 where no loss); with `tokens` [k], each block's summed token loss over it instead (a
    block whose rows are split across passes). Only the positions that predict a label reach the
    output layer: an answer is a minority of a padded batch's positions, and the output layer and
    its softmax over the vocabulary were a third of a tiny model's step."""
    labels = batch["labels"][:, 1:]
    scored = labels != -100
    head = model.get_output_embeddings()
    only_scored = head.register_forward_pre_hook(lambda _layer, args: (args[0][:, :-1][scored],))
    try:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # [n, vocab]
    finally:
        only_scored.remove()
    token_loss = F.cross_entropy(logits.float(), labels[scored], reduction="none")
    block = scored.nonzero()[:, 0] // (labels.shape[0] // k)
    sums = token_loss.new_zeros(k).index_add(0, block, token_loss)
    return sums / (scored.reshape(k, -1).sum(1).clamp(min=1) if tokens is None else tokens)


def scored_tokens(rows: Sequence[Encoded]) -> int:
    """The label positions of rows that carry a loss (as block_losses counts them)."""
    return sum(t != -100 for _, labels in rows for t in labels[1:])


PASS_TOKENS = 1024
"""Padded tokens from which a step's batch runs in several passes by row length: on the tiny
model (rows of ~20 tokens) 16 rows took 40 ms in one pass and 48 ms in two, 64 rows 153 against
135 ms, 128 rows 294 against 239 ms; on SmolLM2 (rows of 26 to 67 tokens, bfloat16), 48 rows took
7.8 s in one pass and 5.6 s in two (docs/benchmarks.md)."""


def length_buckets(blocks: Sequence[Sequence[Encoded]]) -> list[list[Encoded]]:
    """Equal blocks of rows as a few batches of equal blocks by row length: every block's shortest
    rows, then its next shortest, and so on (rows of one length padded together: an organism's
    batch of mixed chats is two fifths padding). As many passes as the padded batch has
    PASS_TOKENS (rounded down to a number that divides a block's rows), one below that, where a
    pass costs more than the padding it saves."""
    rows = [row for b in blocks for row in b]
    wanted = math.ceil(len(rows) * max(len(ids) for ids, _ in rows) / PASS_TOKENS)
    size = len(blocks[0])
    passes = max(p for p in range(1, size + 1) if size % p == 0 and p <= max(1, wanted))
    if passes == 1:
        return [rows]
    ordered = [sorted(b, key=lambda row: len(row[0])) for b in blocks]
    part = size // passes
    return [[r for b in ordered for r in b[i * part : (i + 1) * part]] for i in range(passes)]


def stacked_step(model, stacked: StackedLoRA, next_batches: Sequence[Callable[[int], Sequence[Encoded]]],
                 pad_id: int, losses: list[list[float]]) -> Callable[[int], float]:
    """A `step` for train(): a forward/backward over every organism's next batch (each
    `next_batches[k](i)` gives organism k's batch of step i, all of one size; a large batch in
    several passes by row length, `length_buckets`); appends each organism's loss to
    `losses[k]` and returns their mean."""

    def step(i: int) -> float:
        batches = [next_batch(i) for next_batch in next_batches]
        if len({len(b) for b in batches}) != 1:
            raise ValueError("every organism's batch must have the same number of rows")
        tokens = torch.tensor([max(1, scored_tokens(b)) for b in batches], dtype=torch.float, device=model.device)
        per_organism = torch.zeros(stacked.k)
        for part in length_buckets(batches):  # each organism's mean over the passes: its sum over its tokens
            batch = collate(part, pad_id, model.device)
            timing.count_tokens(int(batch["attention_mask"].sum()))
            part_losses = block_losses(model, batch, stacked.k, tokens)
            part_losses.sum().backward()
            per_organism += part_losses.detach().cpu()
        values = per_organism.tolist()
        for k, v in enumerate(values):
            losses[k].append(v)
        return sum(values) / len(values)

    return step
