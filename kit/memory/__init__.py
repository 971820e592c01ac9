"""The memory calculator: `kit.memory.estimate(model, method, **settings) -> Breakdown`.

`architectures` holds config facts of popular models and exact parameter counts; `estimate` the
byte accounting; `compare` the method comparison, GPU fit verdicts, largest batch/length search and
the LLaMA-Factory README table. Widgets live in kit.ui.memory.
"""
from kit.memory.architectures import ARCHITECTURES, ArchFacts, facts, lookup, names
from kit.memory.estimate import (COMPONENTS, GIB, METHODS, Breakdown, MemorySettings, estimate,
                                 from_train_config, liger_flce_bytes, quant_constant_bytes,
                                 train_config_inputs)

__all__ = ["ARCHITECTURES", "ArchFacts", "Breakdown", "COMPONENTS", "GIB", "METHODS", "MemorySettings",
           "estimate", "facts", "from_train_config", "liger_flce_bytes", "lookup", "names", "quant_constant_bytes",
           "train_config_inputs"]
