"""Training: configs with LLaMA-Factory's argument names and `run(config)` for every stage."""
