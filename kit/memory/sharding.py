"""Per-GPU memory on several GPUs: data parallel (DDP) vs sharded (FSDP, DeepSpeed ZeRO-2/3, offload).

`kit.memory.estimate(model, method, num_gpus=2, sharding="zero3")` calls `per_gpu` here. What each
GPU holds (P = parameters, T = trainable parameters, G = GPUs; bytes):

    ddp      everything of one GPU (weights, gradients, AdamW states, activations of its own batch)
             + DDP's gradient buckets: one more copy of the gradients (torch DDP, gradient_as_bucket_view=False)
    zero2    DeepSpeed bf16 weights (2P) + fp32 master weights and AdamW states / G + bf16 gradient
             partitions / G
    zero3    bf16 weights / G + fp32 master weights and AdamW states / G + bf16 gradient partitions / G
             (DeepSpeed's flat buffer, in its grad_accum_dtype, which defaults to the model's) + the
             parameters gathered for the current forward/backward (bf16)
    fsdp     FSDP2 full shard (accelerate): fp32 weights / G (accelerate upcasts the model so the
             shards are the master weights) + fp32 gradients and AdamW states / G + the gathered
             bf16 units: the root (embeddings, lm_head, final norm; kept for the whole step) and
             the current and prefetched decoder layer
    *_offload  AdamW states (and master weights) live in CPU memory: 0 on the GPU; zero3_offload
             also keeps the parameters there

Activations, logits and working buffers are the single-GPU figures of the GPU's own batch, in the
sharded engines' bf16 compute (mixed precision casts the gathered weights to bf16, so the model runs
like pure_bf16). Sources: Rajbhandari et al. 2020 "ZeRO" (sections 5.1-5.3, the 2 + 2 + 12 bytes per
parameter split), PyTorch FSDP2 `fully_shard` (reshard_after_forward, MixedPrecisionPolicy),
accelerate's FSDP2 preparation (fp32 upcast), torch DDP's Reducer (bucket copies of the gradients).
Not here: several machines, ZeRO++ quantized communication, activation checkpoint offload.
"""
from __future__ import annotations

import dataclasses

SHARDINGS = ("ddp", "fsdp", "zero2", "zero3", "zero2_offload", "zero3_offload", "fsdp_offload")
FSDP_GATHERED_LAYERS = 2     # FSDP2: the current decoder layer and the one prefetched, gathered in bf16
ZERO3_MAX_LIVE_PARAMETERS = 10**9  # DeepSpeed stage3_max_live_parameters of the shipped ZeRO-3 JSON


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def per_gpu(arch, method: str, s, single):
    """The Breakdown of one GPU. `single(arch, method, settings, skip_moments)` is the one-GPU estimate."""
    G, mode = s.num_gpus, s.sharding
    one = dataclasses.replace(s, num_gpus=1, sharding="ddp")
    if mode == "ddp":
        b = single(arch, method, one)
        if G > 1 and method != "inference":
            param_bytes = 2 if s.pure_bf16 else 4
            b.comm_buffers = param_bytes * b.trainable_params   # DDP's bucket copy of every gradient
        b.settings = s
        return b
    if method == "inference":
        raise ValueError(f"sharding={mode!r} is for training; inference runs with sharding='ddp'")
    if s.quantization_bit:
        raise ValueError(f"sharding={mode!r} with quantization_bit={s.quantization_bit}: QLoRA shards only "
                         f"in special setups (FSDP+QLoRA); the kit estimates it with sharding='ddp'")
    # the GPU's own batch in bf16 compute: activations, logits, working buffers and the working
    # gradients of the unit being reduced; whole-model gradients never exist at once when sharded
    dyn = dataclasses.replace(one, pure_bf16=True, gradient_accumulation_steps=1)
    b = single(arch, method, dyn, skip_moments=("end of backward", "optimizer step"))
    P, T = b.num_params, b.trainable_params
    offload = mode.endswith("_offload")
    layer = arch.layer_linear_params() + arch.layer_other_params()
    root = P - arch.num_hidden_layers * layer          # embeddings, lm_head (if untied), final norm
    if mode.startswith("zero2"):
        b.weights = 2 * P                              # bf16 model, replicated
    elif mode.startswith("zero3"):
        b.weights = 0 if mode == "zero3_offload" else _ceil_div(2 * P, G)
        # gathered parameters are kept while they will be used again soon (stage3_max_reuse_distance)
        # up to stage3_max_live_parameters of them (examples/deepspeed/ds_z3_config.json: 1e9 each)
        b.weights += 2 * min(P, ZERO3_MAX_LIVE_PARAMETERS)
    else:  # fsdp: the shards are the fp32 master weights of what trains; frozen weights stay bf16
        b.weights = _ceil_div(4 * T + 2 * (P - T), G) + 2 * (FSDP_GATHERED_LAYERS * layer + root)
    master = 0 if mode.startswith("fsdp") else 4 * T   # DeepSpeed: fp32 master copy of the bf16 weights
    b.trainable = 0                                    # LoRA's adapters are inside the weights above
    b.optimizer_states = 0 if offload else _ceil_div(8 * T + master, G)
    if mode in ("zero2", "zero3"):
        # DeepSpeed keeps this GPU's partition of the gradients (ZeRO-3: one flat buffer for the whole
        # run) in its gradient-accumulation dtype: the model's (bf16) unless the JSON sets
        # data_types.grad_accum_dtype; with optimizer offload they live in CPU memory
        b.gradients += _ceil_div(2 * T, G)
    elif mode == "fsdp" and s.gradient_accumulation_steps > 1:
        b.gradients += _ceil_div(4 * T, G)             # FSDP's fp32 gradient shards live across micro-batches
    b.comm_buffers = 0
    b.weight_copies = 0
    b.settings = s
    b.peak_at += f" ({mode} on {G} GPUs)"
    return b
