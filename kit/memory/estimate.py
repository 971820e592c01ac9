"""GPU memory of inference and fine-tuning, from config facts: `estimate(model, method, **settings)`.

The estimate is the peak of `torch.cuda.max_memory_allocated()` (every byte PyTorch's allocator hands
out) plus a stated CUDA context. It follows what PyTorch keeps alive, tensor by tensor:

* static: weights by dtype; bitsandbytes NF4 (0.5 byte/param) with its absmax constants, 8-bit
  LLM.int8 (1 byte/param) with fp32 row scales; embeddings, lm_head and norms stay 16-bit;
  trainable weights upcast to fp32 (LLaMA-Factory does this unless pure_bf16); LoRA A/B matrices.
* optimizer: AdamW keeps exp_avg and exp_avg_sq in the parameter's dtype (2 x 4 bytes for fp32);
  bitsandbytes 8-bit AdamW keeps 1 byte each plus one fp32 absmax per 256 values.
* activations: the tensors autograd saves, per layer, listed in `_layer_saved_bytes`, for the exact
  code paths of transformers 5 (RMSNorm upcasts to fp32; autocast casts fp32 inputs once per linear;
  peft casts LoRA inputs to the adapter dtype; bitsandbytes 8-bit saves its input; 4-bit does not).
  Gradient checkpointing (non-reentrant) keeps each layer's input and recomputes one layer at a time.
* logits / loss: transformers upcasts the logits to fp32 for the loss; the peak is at the start of
  the backward pass: saved log-softmax + its gradient + the logits' gradient, 12 bytes x tokens x vocab.
* peak: training memory is not one sum. The peak is the largest of a few moments of one step
  (end of forward, start of backward, lm_head backward, a recomputed layer, end of backward), each a
  sum of what is alive then; `Breakdown` reports the components at the winning moment.

Sources: bitsandbytes `functional.quantize_4bit` (blocksize 64, double quantization blocksize 256)
and `int8_vectorwise_quant`; Dettmers et al. 2023 (QLoRA) section 2; torch.optim.AdamW;
Korthikanti et al. 2022 "Reducing Activation Recomputation" (the per-layer accounting method);
transformers `loss_utils.ForCausalLMLoss` (fp32 upcast). A few constants (allocator workspace,
backward working buffers) were fitted on measured cells of three models; see bench/memory_validation.py.
* Liger kernels (`enable_liger_kernel`, liger-kernel 0.8.5 `ops/fused_linear_cross_entropy.py`): the
  fused linear cross-entropy never holds the T x V logits; it computes the loss and the input gradient
  in the forward pass, chunk by chunk: chunk = next_pow2(ceil(T / ceil(V / H))) rows of V logits in the
  compute dtype, plus the saved input gradient (T x H) and an fp32 loss per token. Liger's RMSNorm saves
  its input and one fp32 rstd per row (no fp32 upcast); its SwiGLU saves gate and up outputs only.
* neat packing (`neat_packing`): the collator's [batch, 1, seq, seq] bool mask (1 byte per entry) is
  alive for the whole step.
Several GPUs (DDP, FSDP, ZeRO): kit.memory.sharding. Not here: flash-attention-2 package, vision towers,
paged optimizers, torch.compile. Mixture-of-experts activations are approximate (dense-equivalent).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from kit.memory.architectures import ArchFacts, facts
from kit.memory.sharding import SHARDINGS

GIB = 2**30  # bytes
METHODS = ("inference", "full", "freeze", "lora", "qlora")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit", "adamw_bnb_8bit")  # adamw_torch = foreach
LORA_TARGETS_ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}  # bytes/value

# ---- constants (bytes). Measured or fitted on the fit models (SmolLM2-135M, Qwen2.5-0.5B/1.5B), H100.
CUDA_CONTEXT = 512 * 2**20         # CUDA context + kernels, outside max_memory_allocated (typ. 0.4-0.6 GiB)
WORKSPACE = 72 * 2**20             # cuBLAS/cuBLASLt workspaces taken through PyTorch's allocator (fitted)
WORKSPACE_INFERENCE = 33 * 2**20   # the same without a backward pass (one stream; fitted)
BWD_WORK_I = 6.0                   # backward working buffers of one layer, bytes per token per intermediate unit
BWD_WORK_H = 8.0                   # ... per hidden unit
INFER_WORK_I = {None: 6.0, 4: 6.0, 8: 8.0}  # prefill working set of one MLP, bytes/token/intermediate unit
INFER_WORK_H = 8.0                 # prefill working set, bytes/token/hidden unit (residual, norm temporaries)
NF4_BLOCK = 64                     # values per absmax block (bitsandbytes 4-bit default)
DQ_BLOCK = 256                     # absmax values per second-level block (double quantization)
ADAM8_BLOCK = 256                  # values per absmax block in bitsandbytes 8-bit optimizers
ADAM8_MIN_SIZE = 4096              # bitsandbytes keeps tensors with fewer values in 32-bit states


@dataclass
class MemorySettings:
    """Everything besides the model that memory depends on. Names follow LLaMA-Factory's arguments."""
    dtype: str = field(default="bfloat16", metadata={"help": "compute dtype: bfloat16, float16 or float32", "help_zh": "计算精度：bfloat16、float16 或 float32", "label_zh": "计算精度",
                                                     "choices": ("bfloat16", "float16", "float32"),
                                                     "aliases": {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}})
    quantization_bit: int | None = field(default=None, metadata={"help": "None, 8 (LLM.int8) or 4 (NF4) bitsandbytes weights", "help_zh": "None（不量化）、8（LLM.int8）或 4（NF4）位 bitsandbytes 权重", "label_zh": "量化等级",
                                                                 "choices": (None, 8, 4)})
    double_quantization: bool = field(default=True, metadata={"help": "quantize the 4-bit absmax constants again (QLoRA)", "help_zh": "对 4 位量化的 absmax 常数再量化一次（QLoRA 的双重量化）", "label_zh": "双重量化"})
    batch_size: int = field(default=1, metadata={"help": "sequences per step (per_device_train_batch_size)", "help_zh": "每步的序列数（per_device_train_batch_size）", "label_zh": "批处理大小", "min": 1, "integer": True})
    seq_len: int = field(default=1024, metadata={"help": "tokens per sequence (cutoff_len); context length for inference", "help_zh": "每条序列的 token 数（cutoff_len）；推理时为上下文长度", "label_zh": "序列长度", "min": 1, "integer": True})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "recompute each layer in backward (LLaMA-Factory default on)", "help_zh": "反向传播时重算每一层以节省显存（LLaMA-Factory 默认开启）", "label_zh": "梯度检查点"})
    optimizer: str = field(default="adamw_torch", metadata={"help": "adamw_torch or adamw_8bit (bitsandbytes)", "help_zh": "adamw_torch 或 adamw_8bit（bitsandbytes 8 位优化器）", "label_zh": "优化器",
                                                           "choices": OPTIMIZERS})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa (flash kernel, no seq x seq matrix) or eager", "help_zh": "sdpa（flash 内核，不存 序列×序列 矩阵）或 eager", "label_zh": "注意力实现",
                                                               "choices": ("sdpa", "eager", "flash_attention_2")})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank r", "help_zh": "LoRA 秩 r", "label_zh": "LoRA 秩", "min": 1, "integer": True})
    lora_target: str | tuple = field(default="all", metadata={"help": "'all' linear layers or a list such as ['q_proj', 'v_proj']", "help_zh": "'all' 表示所有线性层，或如 q_proj,v_proj 的模块列表", "label_zh": "LoRA 作用模块"})
    freeze_trainable_layers: int = field(default=2, metadata={"help": "freeze: how many last layers train", "help_zh": "部分参数微调：训练最后几层", "label_zh": "可训练层数", "min": 1, "integer": True})
    pure_bf16: bool = field(default=False, metadata={"help": "full: keep weights, grads and Adam states in bf16 (no fp32 master)", "help_zh": "全参数：权重、梯度和 Adam 状态都用 bf16（无 fp32 主权重）", "label_zh": "纯 bf16"})
    max_new_tokens: int = field(default=0, metadata={"help": "inference: generated tokens added to the KV cache", "help_zh": "推理：生成的 token 数，计入 KV 缓存", "label_zh": "最大生成长度", "min": 0, "integer": True})
    enable_liger_kernel: bool = field(default=False, metadata={"help": "Liger kernels: fused linear cross-entropy (no logits tensor), RMSNorm, SwiGLU", "help_zh": "Liger 内核：融合线性层与交叉熵（不存 logits 张量）、RMSNorm、SwiGLU", "label_zh": "Liger 内核"})
    neat_packing: bool = field(default=False, metadata={"help": "neat packing: a [batch, 1, seq, seq] block-diagonal mask rides along", "help_zh": "无污染打包：附带一个 [batch, 1, seq, seq] 的块对角注意力掩码", "label_zh": "无污染打包"})
    packing: bool = field(default=False, metadata={"help": "greedy packing: rows are full cutoff_len (seq_len is then exact); no extra memory", "help_zh": "贪心打包：每行都是完整的 cutoff_len（seq_len 即准确值）；不额外占显存", "label_zh": "序列打包"})
    use_reentrant_gc: bool = field(default=True, metadata={"help": "reentrant checkpointing (LLaMA-Factory default); same memory in this model", "help_zh": "可重入梯度检查点（LLaMA-Factory 默认）；在此模型中显存相同", "label_zh": "可重入检查点"})
    attention_mask: bool = field(default=False, metadata={"help": "batches carry an attention mask (padding, neat packing): SDPA repeats grouped K/V heads and keeps a float mask", "help_zh": "批次带注意力掩码（填充、无污染打包）：SDPA 会重复分组的 K/V 头并保存浮点掩码", "label_zh": "注意力掩码"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step; > 1 keeps the gradients alive through every forward pass", "help_zh": "每次优化器更新累积的微批次数；大于 1 时梯度在每次前向中都常驻显存", "label_zh": "梯度累积步数", "min": 1, "integer": True})
    num_gpus: int = field(default=1, metadata={"help": "GPUs training together; batch_size is per GPU (kit.memory.sharding)", "help_zh": "一起训练的 GPU 数；batch_size 为每卡批大小（kit.memory.sharding）", "label_zh": "GPU 数", "min": 1, "integer": True})
    sharding: str = field(default="ddp", metadata={"help": "ddp (each GPU holds everything), fsdp, zero2, zero3, "
                                                            "or zero2_offload / zero3_offload / fsdp_offload",
                                                    "help_zh": "ddp（每张卡保存全部）、fsdp、zero2、zero3，或 zero2_offload / zero3_offload / fsdp_offload（卸载到 CPU）",
                                                    "label_zh": "分片方式",
                                                    "choices": SHARDINGS})

    def validate(self) -> "MemorySettings":
        """Each field against its metadata (kit.settings), then lora_target's names."""
        from kit import settings

        settings.check(self)
        unknown = [t for t in self.targets() if t not in LORA_TARGETS_ALL]
        if unknown:
            raise ValueError(f"MemorySettings.lora_target={self.lora_target!r} is not allowed; expected 'all' or "
                             f"names from {', '.join(LORA_TARGETS_ALL)}")
        return self

    def targets(self) -> tuple[str, ...]:
        if self.lora_target in ("all", None):
            return LORA_TARGETS_ALL
        if isinstance(self.lora_target, str):
            return tuple(t.strip() for t in self.lora_target.split(",") if t.strip())
        return tuple(self.lora_target)

    @property
    def eight_bit_adam(self) -> bool:
        return self.optimizer in ("adamw_8bit", "adamw_bnb_8bit")


def _component(label: str, label_zh: str):
    return field(default=0, metadata={"label": label, "label_zh": label_zh, "component": True})


@dataclass
class Breakdown:
    """Bytes alive at the peak, by component. `total` includes the CUDA context; `allocated` does not
    (it is what torch.cuda.max_memory_allocated reports)."""
    model: str
    method: str
    # each component's label (English, Chinese) lives on its field: tables and plots read it (`label`)
    weights: int = _component("weights", "权重")  # frozen/base weights as stored (fp32, bf16, int8 or packed 4-bit)
    quant_constants: int = _component("quantization constants", "量化常数")  # bitsandbytes absmax / row scales
    trainable: int = _component("trainable", "可训练参数")  # adapter weights (LoRA A/B); full/freeze: in weights
    weight_copies: int = _component("weight copies", "权重副本")  # bf16 copies of fp32 weights kept for backward
    gradients: int = _component("gradients", "梯度")
    optimizer_states: int = _component("optimizer states", "优化器状态")
    activations: int = _component("activations", "激活值")  # saved for backward (inference: the prefill working set)
    logits_loss: int = _component("logits + loss", "logits 与损失")  # logits, fp32 upcast, log-softmax, their gradients
    kv_cache: int = _component("KV cache", "KV 缓存")
    workspace: int = _component("workspace", "工作区")  # cuBLAS workspaces and backward working buffers
    cuda_context: int = _component("CUDA context", "CUDA 上下文")
    comm_buffers: int = _component("communication buffers", "通信缓冲区")  # several GPUs: DDP's gradient buckets
    peak_at: str = ""          # which moment of the step the components describe
    num_params: int = 0
    trainable_params: int = 0
    settings: MemorySettings | None = None

    @property
    def allocated(self) -> int:
        return sum(getattr(self, c) for c in COMPONENTS if c != "cuda_context")

    @property
    def total(self) -> int:
        return self.allocated + self.cuda_context

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    @staticmethod
    def label(component: str, lang: int = 0) -> str:
        """A component's name for people: English (lang 0) or Chinese (lang 1)."""
        meta = _BREAKDOWN_FIELDS[component].metadata
        return meta["label_zh"] if lang else meta["label"]

    def as_dict(self, unit: str = "GiB") -> dict:
        scale = GIB if unit == "GiB" else 1
        out = {c: getattr(self, c) / scale for c in COMPONENTS}
        out["total"] = self.total / scale
        return out

    def __str__(self) -> str:
        rows = [f"{self.model} / {self.method}: {self.total_gib:.2f} GiB (peak at {self.peak_at})"]
        rows += [f"  {c:<17}{getattr(self, c) / GIB:9.3f} GiB" for c in COMPONENTS if getattr(self, c)]
        return "\n".join(rows)


_BREAKDOWN_FIELDS = {f.name: f for f in fields(Breakdown)}
COMPONENTS = tuple(name for name, f in _BREAKDOWN_FIELDS.items() if f.metadata.get("component"))


# ------------------------------------------------------------------------------- static parts

def quant_constant_bytes(num_values: int, bits: int, double_quantization: bool = True, out_features: int = 0) -> int:
    """Bytes of bitsandbytes quantization constants for one weight matrix.

    4-bit: one absmax per 64 values, fp32 (4 bytes) or, with double quantization, uint8 (1 byte) plus
    one fp32 absmax per 256 blocks and a 256-entry fp32 code table; NF4 adds a 16-entry fp32 code.
    8-bit: one fp32 scale per output row (LLM.int8 vector-wise quantization)."""
    if bits == 8:
        return 4 * out_features
    blocks = -(-num_values // NF4_BLOCK)
    if not double_quantization:
        return 4 * blocks + 16 * 4
    return blocks + 4 * -(-blocks // DQ_BLOCK) + 256 * 4 + 16 * 4


def _lora_params(arch: ArchFacts, s: MemorySettings) -> int:
    """LoRA A (r x in) and B (out x r) for every targeted linear of every layer."""
    shapes = arch.linear_shapes()
    per_layer = sum(s.lora_rank * (i + o) * n for name, (i, o, n) in shapes.items() if name in s.targets())
    return per_layer * arch.num_hidden_layers


def _adam_bytes(num_params: int, param_bytes: int, s: MemorySettings, tensor_sizes: list[int] | None = None) -> int:
    """AdamW states: 2 x param dtype (torch); 8-bit: 2 x 1 byte + 2 fp32 absmax per 256 (tensors >= 4096)."""
    if not s.eight_bit_adam:
        return 2 * param_bytes * num_params
    sizes = tensor_sizes or [num_params]
    total = 0
    for n in sizes:
        total += 2 * (n + 4 * -(-n // ADAM8_BLOCK)) if n >= ADAM8_MIN_SIZE else 2 * 4 * n
    return total


# ------------------------------------------------------------------------------- activations

def _norm_saved(x_bytes: int, weight_trains: bool, weight_bytes: int, liger: bool = False) -> tuple[float, int]:
    """RMSNorm (transformers): x.to(fp32) -> x * rsqrt(mean(x^2)) -> weight * h.to(x.dtype).

    Returns (bytes saved per hidden unit per token, bytes of its output). The fp32 upcast is saved
    (it is `x` itself when x is already fp32); with a trainable weight the normalised h is saved too.
    Liger's RMSNorm saves x as it is (its fp32 rstd, 4 bytes per token, is negligible per unit)."""
    if liger:
        return float(x_bytes), max(x_bytes, weight_bytes) if weight_trains else x_bytes
    saved = 4.0
    if weight_trains:
        saved += x_bytes
    out_bytes = max(x_bytes, weight_bytes)  # type promotion: fp32 weight * bf16 h -> fp32
    return saved, out_bytes


def _layer_saved_bytes(arch: ArchFacts, s: MemorySettings, regime: str, seq_len: int) -> float:
    """Bytes autograd saves in one decoder layer, per token.

    regime: 'amp' (fp32 weights, bf16 autocast), 'bf16' (pure bf16 full), 'freeze' (fp32 trainable layer
    in a bf16 model), 'lora' (bf16 base + fp32 adapters), 'qlora' (bitsandbytes base + adapters).
    Each linear either saves nothing (frozen weight), its input tensor (shared by linears that read
    it), or its own bf16 copy (autocast or peft casting an input). MLP: SiLU saves its input, the
    product saves both factors."""
    H, Q, K, I = arch.hidden_size, arch.q_dim, arch.kv_dim, arch.intermediate_size
    n_heads = arch.num_attention_heads
    targets = set(s.targets()) if regime in ("lora", "qlora") else set()
    r = s.lora_rank
    stream = 4 if regime == "amp" else 2                   # residual stream dtype (bytes)
    norm_w = {"amp": 4, "bf16": 2, "freeze": 4}.get(regime, 2)
    norm_trains = regime in ("amp", "bf16", "freeze")
    # peft casts x to the fp32 adapter dtype and autocast casts it back: each adapter saves its own copy
    # (measured: the same for bitsandbytes base layers)
    lora_copies = regime in ("lora", "qlora") and not s.pure_bf16
    bits = s.quantization_bit if regime == "qlora" else None

    def linear_inputs(names: list[str], width: int, in_bytes: int) -> float:
        """Saved bytes per token for linears sharing one input of `width` values of `in_bytes`."""
        shared = False
        copies = 0
        for name in names:
            trains = regime in ("amp", "bf16", "freeze")
            if trains:
                if in_bytes == 4:      # autocast casts an fp32 input anew for each linear
                    copies += 1
                else:
                    shared = True
            if bits == 8:              # bitsandbytes MatMul8bitLt saves its input A
                shared = True
            if name in targets:
                if lora_copies:
                    copies += 1
                else:
                    shared = True
                # A's output (r values, bf16) is saved for B
        lora_out = sum(2 * r for name in names if name in targets)
        return (2 * width if shared else 0) + 2 * width * copies + lora_out

    liger = s.enable_liger_kernel
    saved, y_bytes = _norm_saved(stream, norm_trains, norm_w, liger)
    total = saved * H
    total += linear_inputs(["q_proj", "k_proj", "v_proj"], H, y_bytes)
    if arch.has_qk_norm:  # per-head RMSNorm on q and k: fp32 upcasts saved
        total += 4 * (Q + K) + (2 * (Q + K) if norm_trains else 0)
    if s.attn_implementation == "eager":
        kv_rep = 2 * Q if arch.num_key_value_heads != n_heads else 2 * K
        # q, repeated k and v, fp32 softmax output, its bf16 copy (saved by probs @ v), output
        total += 2 * Q + 2 * kv_rep + (4 + 2) * n_heads * seq_len
    elif s.attention_mask:
        # SDPA with a mask (a padded batch, neat packing): transformers does not use SDPA's GQA path with
        # a mask, so K and V are repeated to every query head before SDPA saves them; the
        # memory-efficient kernel also keeps the mask as a [.., seq, seq padded to 16] 16-bit bias.
        # (Fitted on kit.train.run cells without checkpointing, bench/results/memory_validation.csv.)
        total += 2 * Q + 2 * Q + 2 * Q + 2 * Q + 4 * n_heads + 2 * (-(-seq_len // 16) * 16)
    else:  # sdpa flash/efficient kernel: q, k, v, output and fp32 logsumexp per head
        total += 2 * Q + 2 * K + 2 * K + 2 * Q + 4 * n_heads
    total += linear_inputs(["o_proj"], Q, 2)
    saved, y_bytes = _norm_saved(stream, norm_trains, norm_w, liger)
    total += saved * H
    total += linear_inputs(["gate_proj", "up_proj"], H, y_bytes)
    # SiLU input, SiLU output and up output (bf16), saved by silu and the product; Liger's SwiGLU saves
    # gate and up outputs only and recomputes SiLU in backward
    total += (2 if liger else 3) * 2 * I
    total += linear_inputs(["down_proj"], I, 2)
    if arch.num_local_experts > 1:  # routed experts: each token's MLP tensors once per chosen expert
        total += (arch.num_experts_per_tok - 1) * 8 * I + 4 * arch.num_local_experts
    return total


# ------------------------------------------------------------------------------- the estimate

def estimate(model, method: str, **settings) -> Breakdown:
    """Peak GPU memory of `method` on `model`, as a `Breakdown` of bytes.

    model: a bundled name (kit.memory.names()), a local model folder (its config.json), a transformers
    config or config dict, or a loaded model.
    method: 'inference', 'full', 'freeze', 'lora' or 'qlora' (qlora = lora on quantization_bit 4 or 8).
    settings: the fields of MemorySettings (dtype, quantization_bit, batch_size, seq_len,
    gradient_checkpointing, optimizer, attn_implementation, lora_rank, lora_target,
    freeze_trainable_layers, double_quantization, pure_bf16, max_new_tokens, num_gpus, sharding).
    num_gpus / sharding: per-GPU memory when training on several GPUs (batch_size is per GPU):
    sharding 'ddp' (data parallel: every GPU holds everything), 'fsdp', 'zero2', 'zero3' or an
    '_offload' variant (kit.memory.sharding says what each GPU holds).

    >>> estimate("Qwen2.5-7B", "qlora", seq_len=1024).total_gib  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    known = {f.name for f in fields(MemorySettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; settings are {', '.join(sorted(known))}")
    if method == "qlora" and settings.get("quantization_bit") is None:
        settings["quantization_bit"] = 4
    if method in ("full", "freeze") and settings.get("quantization_bit"):
        raise ValueError(f"quantization_bit={settings['quantization_bit']} needs method 'lora'/'qlora' or "
                         f"'inference': bitsandbytes weights cannot be trained directly ({method})")
    s = MemorySettings(**settings).validate()
    if method == "lora" and s.quantization_bit:
        method = "qlora"
    arch = facts(model)
    from kit.memory.limits import check_inputs

    check_inputs(arch, s)  # absurd sizes are refused, not summed
    if s.dtype in ("float32", "fp32") and method != "inference":
        raise ValueError("dtype=float32 training is not modelled; use bfloat16 or float16 (mixed precision)")
    if s.num_gpus > 1 or s.sharding != "ddp":  # per-GPU memory on several GPUs
        from kit.memory import sharding

        return sharding.per_gpu(arch, method, s, _estimate)
    return _estimate(arch, method, s)


def _estimate(arch: ArchFacts, method: str, s: MemorySettings, skip_moments: tuple = ()) -> Breakdown:
    """Static weights, then (inference) the prefill or (training) trainables, activations and the
    moments of one step; the largest moment is the peak."""
    bits = s.quantization_bit if method in ("inference", "qlora") else None
    b = Breakdown(model=arch.name, method=method, settings=s, num_params=arch.num_params(), workspace=WORKSPACE,
                  cuda_context=CUDA_CONTEXT)
    _static_weights(b, arch, method, s, bits)
    if method == "inference":
        return _inference(b, arch, s, bits)
    train = _trainables(b, arch, method, s)
    moments = _step_moments(arch, method, s, train, bits)
    if s.gradient_accumulation_steps > 1:  # gradients of earlier micro-batches stay until the optimizer step
        for moment_name, moment in moments.items():
            if moment_name not in ("end of backward", "optimizer step"):
                moment["gradients"] = moment.get("gradients", 0) + train["grads_all"]
    for moment_name in skip_moments:  # kit.memory.sharding: moments that do not happen when sharded
        moments.pop(moment_name, None)
    name, best = max(moments.items(), key=lambda kv: sum(kv[1].values()))
    b.peak_at = name
    b.optimizer_states = train["states"]
    for key, value in best.items():
        setattr(b, key, getattr(b, key) + int(value) if key == "workspace" else int(value))
    return b


def _static_weights(b: Breakdown, arch: ArchFacts, method: str, s: MemorySettings, bits: int | None) -> None:
    """Weights (bytes) as stored, and bitsandbytes quantization constants."""
    n_params = b.num_params
    linear = arch.layer_linear_params() * arch.num_hidden_layers  # what bitsandbytes quantizes
    other = n_params - linear                       # embeddings, lm_head, norms, biases (stay 16-bit)
    compute = DTYPE_BYTES[s.dtype]                  # 2 for bf16/fp16
    if bits:
        b.weights = int(linear * bits / 8) + other * compute
        shapes = arch.linear_shapes().values()
        b.quant_constants = arch.num_hidden_layers * sum(
            n * quant_constant_bytes(i * o, bits, s.double_quantization, o) for i, o, n in shapes)
    elif method == "full" and not s.pure_bf16:
        b.weights = 4 * n_params                    # fp32 master weights (AMP)
    else:
        b.weights = compute * n_params


def _inference(b: Breakdown, arch: ArchFacts, s: MemorySettings, bits: int | None) -> Breakdown:
    """Inference: KV cache of the whole context plus the prefill working set of one layer."""
    L, H, V, I = arch.num_hidden_layers, arch.hidden_size, arch.vocab_size, arch.intermediate_size
    T = s.batch_size * s.seq_len                    # tokens per step
    compute = DTYPE_BYTES[s.dtype]
    ctx = s.seq_len + s.max_new_tokens
    b.kv_cache = 2 * L * s.batch_size * ctx * arch.kv_dim * compute   # K and V, per layer
    b.activations = int(T * (INFER_WORK_I[bits] * I * max(1, arch.num_experts_per_tok) + INFER_WORK_H * H))
    if bits == 4:   # one weight de-quantized to bf16 for the prefill matmul
        b.activations += 2 * max(i * o for i, o, _ in arch.linear_shapes().values())
    b.logits_loss = 4 * s.batch_size * V       # last position's logits
    b.workspace = WORKSPACE_INFERENCE
    b.peak_at = "prefill of the last layer (KV cache of the whole context)"
    return b


def _trainables(b: Breakdown, arch: ArchFacts, method: str, s: MemorySettings) -> dict:
    """Trainable parameters, their dtype, gradients and optimizer states; sets b.trainable(_params)
    (and b.weights for freeze). Returns n_train, regime, copies (autocast bf16 weight copies),
    grads_all and states, in bytes where they are sizes."""
    L, H, V = arch.num_hidden_layers, arch.hidden_size, arch.vocab_size
    n_params = b.num_params
    compute = DTYPE_BYTES[s.dtype]
    trainable_bytes = 2 if s.pure_bf16 else 4       # LLaMA-Factory upcasts trainable params to fp32
    layer_params = arch.layer_linear_params() + arch.layer_other_params()
    if method == "full":
        n_train = n_params
        regime = "bf16" if s.pure_bf16 else "amp"
        linear = arch.layer_linear_params() * L
        copies = 0 if s.pure_bf16 else 2 * (linear + (V * H))   # autocast bf16 copies of linears + lm_head
        sizes = None
    elif method == "freeze":
        k = min(s.freeze_trainable_layers, L)
        n_train = k * layer_params
        regime = "freeze"
        b.weights = compute * (n_params - n_train) + trainable_bytes * n_train
        copies = 0 if s.pure_bf16 else 2 * k * arch.layer_linear_params()
        sizes = None
    else:
        n_train = _lora_params(arch, s)
        regime = "qlora" if method == "qlora" else "lora"
        b.trainable = trainable_bytes * n_train
        copies = 0 if s.pure_bf16 else 2 * n_train
        sizes = [s.lora_rank * d for i, o, n in arch.linear_shapes().values() for d in (i, o)]
    b.trainable_params = n_train
    param_bytes = (2 if s.pure_bf16 else 4) if method == "full" else trainable_bytes  # dtype of trainables
    return {"n_train": n_train, "regime": regime, "copies": copies, "param_bytes": param_bytes,
            "grads_all": param_bytes * n_train,                       # one gradient per trainable param
            "states": _adam_bytes(n_train, param_bytes, s, sizes)}


def _step_moments(arch: ArchFacts, method: str, s: MemorySettings, train: dict, bits: int | None) -> dict:
    """What is alive at each moment of one training step: {moment: {component: bytes}}."""
    L, H, V, I = arch.num_hidden_layers, arch.hidden_size, arch.vocab_size, arch.intermediate_size
    T = s.batch_size * s.seq_len                    # tokens per step
    regime, copies = train["regime"], train["copies"]
    # --- activations (bytes saved for backward)
    per_layer = T * _layer_saved_bytes(arch, s, regime, s.seq_len)
    stream = 4 if regime == "amp" else 2
    # freeze: frozen lower layers save nothing (no gradient flows into them)
    n_act_layers = min(s.freeze_trainable_layers, L) if method == "freeze" else L
    if s.gradient_checkpointing:  # each layer's input is kept (LLaMA-Factory makes inputs require grad)
        saved_layers = T * stream * H * L
    else:
        saved_layers = per_layer * n_act_layers
    final_norm, _ = _norm_saved(stream, method == "full", stream, s.enable_liger_kernel)
    head_in = (2 * H * T) if method == "full" else 0  # lm_head saves its (bf16) input when it trains
    acts = saved_layers + T * final_norm * H + head_in
    if s.neat_packing:  # the collator's bool block-diagonal mask, [batch, 1, seq, seq], 1 byte each
        acts += s.batch_size * s.seq_len * s.seq_len
    bwd_work = T * (BWD_WORK_I * I + BWD_WORK_H * H)
    dequant = 2 * max(i * o for i, o, _ in arch.linear_shapes().values()) if bits else 0
    lm_grad = 0
    if method == "full":   # lm_head weight gradient: bf16 from the matmul, then fp32 (.grad) under AMP
        lm_grad = 2 * V * H + (0 if s.pure_bf16 else 4 * V * H)

    logits_fwd, logits_bwd0, logits_head = 10 * T * V, 12 * T * V, 2 * T * V
    if s.enable_liger_kernel:
        logits_fwd, logits_bwd0, logits_head = liger_flce_bytes(T, H, V, DTYPE_BYTES[s.dtype])
    ckpt_copies = (2 * V * H if method == "full" and not s.pure_bf16 else 0) if s.gradient_checkpointing else copies
    moments = {
        # inside forward, at the log-softmax: autocast's cache still holds every bf16 weight copy
        "end of forward": dict(weight_copies=copies, activations=acts, logits_loss=logits_fwd),
        # log-softmax backward: saved fp32 log-probs + their gradient + the fp32 logits' gradient
        "start of backward": dict(weight_copies=ckpt_copies, activations=acts, logits_loss=logits_bwd0),
        "lm_head backward": dict(weight_copies=ckpt_copies, activations=acts, logits_loss=logits_head,
                                 gradients=lm_grad),
        "end of backward": dict(gradients=train["grads_all"] + (4 * V * H if method == "full" and arch.tie_word_embeddings
                                                                else 0)),
    }
    if s.optimizer == "adamw_torch" and method in ("full", "freeze"):
        # torch.optim.AdamW's default foreach path makes one temporary the size of the parameters
        # (_foreach_sqrt(exp_avg_sq)) while every gradient is still alive; fused AdamW does not.
        # Measured on kit.train.run full fine-tuning (bench/results/memory_validation.csv, path kit).
        moments["optimizer step"] = dict(gradients=train["grads_all"], workspace=train["param_bytes"] * train["n_train"])
    if s.gradient_checkpointing:
        moments["recomputed top layer"] = dict(
            weight_copies=copies // max(L, 1), activations=acts - T * stream * H + per_layer,
            workspace=bwd_work + dequant, gradients=lm_grad)
    else:
        moments["top layer backward"] = dict(
            weight_copies=ckpt_copies, activations=acts, workspace=bwd_work + dequant, gradients=lm_grad)
    return moments


def liger_flce_bytes(T: int, H: int, V: int, compute: int) -> tuple[int, int, int]:
    """Liger's fused linear cross-entropy (ops/fused_linear_cross_entropy.py, chunk_mem_const 1):
    (bytes at the end of forward, at the start of backward, during the lm_head backward).
    Forward: the input gradient (T x H, compute dtype) + one logits chunk (chunk x V, compute dtype,
    reused) + its in-place softmax gradient's fp32 working copy counted once more + fp32 loss per token.
    Backward only scales the saved input gradient."""
    inc_factor = -(-V // H)
    chunk = min(1 << max(0, (-(-T // inc_factor) - 1).bit_length()), T)   # next power of two, <= T
    grad_input = compute * T * H
    fwd = grad_input + 2 * compute * chunk * V + 4 * T
    return fwd, grad_input, 2 * grad_input


def train_config_inputs(config, *, batch_size: int | None = None, seq_len: int | None = None,
                        device: str = "cuda") -> tuple[str, str, dict]:
    """(model, method, settings) for `estimate()` from a kit.train.TrainConfig, as kit.train.run would
    run it on `device`: method from finetuning_type/quantization_bit, dtype from bf16/fp16,
    per_device_train_batch_size x cutoff_len (or the batch_size / seq_len given: e.g. the padded width
    of a real batch), checkpointing as kit.train.accel decides, Liger, packing, attention.
    model: the bundled architecture's name when config.model_name_or_path is one (any alias, the
    built-in model's too), else its local folder (kit.models.resolve; offline, a hub id fails fast)."""
    from kit.train import accel

    method = "qlora" if config.quantization_bit else config.finetuning_type
    attn = {"auto": "sdpa", "sdpa": "sdpa", "disabled": "eager", "fa2": "flash_attention_2"}[config.flash_attn]
    liger = config.enable_liger_kernel is True or (config.enable_liger_kernel == "auto"
                                                    and not accel.liger_problem(device))
    settings = dict(dtype="float16" if config.fp16 else "bfloat16", batch_size=batch_size or config.per_device_train_batch_size,
                    seq_len=seq_len or config.cutoff_len,
                    gradient_checkpointing=accel.use_gradient_checkpointing(config, device),
                    optimizer=config.optim if config.optim in OPTIMIZERS else "adamw_torch",
                    attn_implementation=attn, attention_mask=True,
                    lora_rank=config.lora_rank, lora_target=config.lora_target or "all",
                    freeze_trainable_layers=max(1, abs(config.freeze_trainable_layers)),
                    pure_bf16=config.pure_bf16, enable_liger_kernel=liger, neat_packing=config.neat_packing,
                    packing=accel.packing_on(config), use_reentrant_gc=config.use_reentrant_gc,
                    quantization_bit=config.quantization_bit, double_quantization=config.double_quantization)
    return _model_of(str(config.model_name_or_path)), method, settings


def _model_of(name: str) -> str:
    if (Path(name).expanduser() / "config.json").is_file():
        return name
    try:
        return facts(name).name  # a bundled architecture, by any of its names
    except KeyError:
        from kit import models

        return str(models.resolve(name))  # a folder holding config.json (offline: HubUnreachableError)


def from_train_config(config, *, batch_size: int | None = None, seq_len: int | None = None,
                      device: str = "cuda") -> "Breakdown":
    """The estimate for a kit.train.TrainConfig as kit.train.run would run it on `device`
    (`train_config_inputs` says how each setting is read)."""
    model, method, settings = train_config_inputs(config, batch_size=batch_size, seq_len=seq_len, device=device)
    return estimate(model, method, **settings)
