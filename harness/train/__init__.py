"""Training: the one training loop, many LoRAs in one pass, DPO, the implant routes, the
weight-symmetry attack, adapters in the store. Above lm/."""
