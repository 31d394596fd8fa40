"""One straight-line training loop shared by pretraining, organisms, the IA and DPO."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence

import torch

from harness.core.errors import ConfigError
from harness.core.progress import progress_bar
from harness.core.tracking import log_live

Encoded = tuple[list[int], list[int]]  # (input_ids, labels with -100 where no loss)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(n: int | None) -> int:
    """Give torch `n` threads (None: $OMP_NUM_THREADS if set, else every core this process may
    use); returns the count."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(n or (int(env) if env.isdigit() else 0) or cores())
    return torch.get_num_threads()


def collate(batch: Sequence[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding gets no attention and no loss."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params: list[torch.nn.Parameter], lr: float, steps: int, warmup: int):
    """AdamW with warm-up and cosine decay (without decay adapters' accuracy swings)."""
    if not params:
        raise ValueError("no trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))


def train(
    model,
    params: Sequence[torch.nn.Parameter],
    step: Callable[[int], float],
    steps: int,
    lr: float,
    warmup: int = 0,
    desc: str = "train",
    progress: bool = True,
    clip: Callable[[], None] | None = None,
    curve: str | None = None,
) -> list[float]:
    """The one training loop (pretraining, organisms, the IA, DPO): `steps` AdamW steps on
    `params`, each after `step(i)` has run the forward and backward passes (accumulating over as
    many batches as it likes) and returned the step's loss; gradients are clipped to norm 1
    (or by `clip()`, e.g. per organism of a batch). `curve` names the loss's live W&B curve.
    Returns the losses."""
    params = list(params)
    opt, sched = make_optimizer(params, lr, steps, warmup)
    model.train()
    losses = []
    with progress_bar(range(steps), desc, progress, leave=False) as bar:
        for i in bar:
            losses.append(step(i))
            if curve is not None:
                log_live(curve, losses[-1])
            if not math.isfinite(losses[-1]):
                raise Diverged(f"{desc}: training diverged at step {i} (loss {losses[-1]}); nothing was saved "
                               "(lower the learning rate)")
            if clip is None:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
            else:
                clip()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    if not all(torch.isfinite(p).all() for p in params):
        raise Diverged(f"{desc}: training left non-finite weights; nothing was saved (lower the learning rate)")
    model.eval()
    return losses


class Diverged(ConfigError):
    """Training produced NaN or inf: a one-line error (usually a learning rate too high)."""


def step_on_batches(model, next_batch: Callable[[int], Sequence[Encoded]], pad_id: int) -> Callable[[int], float]:
    """A `step` for train(): the causal-LM loss of one batch from `next_batch(i)`."""

    def step(i: int) -> float:
        loss = model(**collate(next_batch(i), pad_id, model.device)).loss
        loss.backward()
        return loss.item()

    return step


def trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]


def tail_mean(values: Sequence[float], n: int = 10) -> float:
    tail = list(values)[-n:]
    return sum(tail) / len(tail) if tail else float("nan")
