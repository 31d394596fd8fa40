"""Adapters in the store: names, checks and loading, shared by the IA and probe stages and the
audit. An organism is a peft LoRA adapter (or, for a weight route, a whole checkpoint); the IA
is a LoRA stacked on top of an organism."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from peft import PeftModel
from peft.tuners.lora import LoraLayer

from harness.core.errors import ConfigError
from harness.core.records import BaseModelCard, IACard, OrganismCard
from harness.core.store import Store
from harness.lm import models
from harness.train.routes import route

IA = "ia"
"""The IA's peft adapter name (and the subfolder peft saves it in)."""


def adapter_name(card: OrganismCard) -> str:
    """A peft adapter name for an organism (peft names may not contain '.' or '/')."""
    return f"o_{card.key}"


def organism_adapter(card: OrganismCard, base: BaseModelCard, store: Store) -> Path:
    """The organism's folder, checked: made from this base model, and a safetensors peft adapter
    (or, for the weight routes, a safetensors checkpoint)."""
    what = f"organism {card.behavior_id} ({card.route})"
    path = store.path("organisms", card.key)
    if card.base_key != base.key:
        raise ConfigError(f"{what} was made from base model {card.base_key}, not {base.key} ({path})")
    if route(card.route).weights:
        return models.check_checkpoint(path, what)
    return check_base(models.check_adapter(path, what), base, what)


def check_base(adapter: Path, base: BaseModelCard, what: str) -> Path:
    """The adapter, checked to be made on this base model by content: the fingerprint stamped in its
    weights' metadata must be the base's."""
    stamped = models.stamped_base(adapter)
    if base.fingerprint and stamped != base.fingerprint:
        raise ConfigError(f"{what} was made on a base model with fingerprint {stamped}, not on {base.name_or_path} "
                          f"(fingerprint {base.fingerprint}): {adapter}")
    return adapter


def load_with_organisms(base: BaseModelCard, organisms: Sequence[OrganismCard], store: Store) -> PeftModel:
    """The base model with every organism adapter loaded (frozen), none of them active yet."""
    paths = [organism_adapter(card, base, store) for card in organisms]
    base_model = models.load_base(base)
    model = PeftModel.from_pretrained(base_model, paths[0], adapter_name=adapter_name(organisms[0]))
    for card, path in zip(organisms[1:], paths[1:], strict=True):
        model.load_adapter(path, adapter_name=adapter_name(card))
    return model


def ia_path(store: Store, card: IACard) -> Path:
    """Folder of the IA's safetensors (peft saves a named adapter in a subfolder)."""
    return store.path("ia", card.key) / IA


def ia_adapter(store: Store, card: IACard, base: BaseModelCard) -> Path:
    """The IA's adapter folder, checked like an organism's."""
    if card.base_key != base.key:
        raise ConfigError(f"IA {card.key} was trained on base model {card.base_key}, not {base.key}")
    return check_base(models.check_adapter(ia_path(store, card), f"IA {card.key}"), base, f"IA {card.key}")


def combine_with_ia(model: PeftModel, adapter: str, ia: str, name: str) -> None:
    """Add adapter `name`: `adapter` and `ia` stacked as one (peft's `cat` combination, identical
    to stacking the two). peft refuses to combine an adapter whose target modules are a regular
    expression (an organism on the upper layers only) with one whose are a list (the IA on
    all-linear layers): such an adapter's modules are named one by one first."""
    for each in (adapter, ia):
        config = model.peft_config[each]
        if isinstance(config.target_modules, str):
            config.target_modules = {n for n, m in model.base_model.model.named_modules()
                                     if isinstance(m, LoraLayer) and each in m.lora_A}
    model.add_weighted_adapter([adapter, ia], [1.0, 1.0], name, combination_type="cat")
