"""The GPU fast path's switches: Liger kernels, neat (attention-isolated) packing, gradient checkpointing.

    accel.check(config, device)          # before the model loads: ConfigError if Liger cannot run here
    accel.apply_liger(model, config)     # Liger kernels on a loaded model (before LoRA wraps it)
    accel.use_gradient_checkpointing(config, device)   # LLaMA-Factory's default on a GPU, off on CPU
    blocks = accel.compile_layers(model, config)       # torch_compile: each decoder layer, compiled once
    graph = accel.graph_decoder(model, config)         # cuda_graphs: the decoder recorded once, replayed per step
    with accel.attention_backends(config, device): ... # neat packing on CUDA: SDPA without cuDNN
    rows = accel.pack_neat(features, cutoff_len)       # several examples per row, segment ids 1, 2, ...
    collator = accel.NeatPackingCollator(tokenizer, attn_implementation="sdpa")

Neat packing keeps LLaMA-Factory's representation: the packed row's `attention_mask` holds the index
of the example each token belongs to (1, 1, 1, 2, 2, 3, ...; 0 = padding). The collator turns it into
what the attention kernel needs:
* sdpa / eager / flex: a 4D block-diagonal causal mask [batch, 1, seq, seq] (bool for sdpa, additive
  float for eager) plus position ids that restart per example. With transformers 5.24, position ids
  alone do not isolate the examples once a 2D attention mask is passed (transformers looks for packed
  sequences only when the mask is None); a 4D mask is used as given. tests/test_accel.py checks that
  the first training loss equals the unpacked one (relative difference <= 1e-3).
* fa2 (flash-attention 2): no mask, only the restarting position ids; transformers then calls the
  varlen kernel with the example boundaries.
The first token of each example gets label -100, so no example is trained to predict its neighbour's
first token (unpacked, that token is never predicted either).

torch_compile compiles regionally: each decoder layer is compiled in place (`nn.Module.compile`), and
as every layer runs the same code, one compiled forward and backward serve them all (PyTorch's
"regional compilation" recipe; accelerate's `compile_regions` does the same), where transformers' own
`torch_compile` argument traces the whole model, every layer again, into one graph. The layers are
uncompiled again after training, so the notebook's later generation does not recompile for every new
prompt length.

cuda_graphs records instead of compiling: the decoder's forward and backward are captured once as CUDA
graphs (PyTorch's make_graphed_callables, at the first training step) and replayed at every step,
around the same eager kernels. Nothing is compiled, so the start-up is a few seconds; each step
launches a few hundred kernels instead of thousands (see DecoderGraph and lesson 12).

Not here: FlashAttention-3, Unsloth's kernels, sequence parallelism.
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect

from kit.templates.encode import IGNORE_INDEX
from kit.train.config import ConfigError


# ------------------------------------------------------------------------------- Liger

def liger_problem(device: str) -> str | None:
    """Why Liger kernels cannot run on `device` (None when they can)."""
    if not str(device).startswith("cuda"):
        return f"Liger kernels are Triton GPU kernels and need a CUDA device (this run uses {device!r})"
    if importlib.util.find_spec("triton") is None:
        return "Liger kernels need Triton (it comes with PyTorch's CUDA builds); it is not installed"
    if importlib.util.find_spec("liger_kernel") is None:
        return "the liger-kernel package is not installed: pip install '.[gpu]' (or pip install liger-kernel)"
    return None


def check(config, device: str):
    """Fail fast, before any model loads, for a switch that cannot work here. `enable_liger_kernel:
    auto` is resolved: on when it can run, else off with a printed note. Returns the config."""
    if config.enable_liger_kernel in (True, "auto"):
        problem = liger_problem(device)
        if problem and config.enable_liger_kernel is True:
            raise ConfigError(f"field 'enable_liger_kernel' = True cannot be used: {problem}. "
                              f"Set enable_liger_kernel: false, or 'auto' to use it only where it runs.")
        if problem:
            print(f"enable_liger_kernel: auto -> off ({problem}).")
    if config.neat_packing and config.stage not in ("sft", "pt"):
        raise ConfigError(f"field 'neat_packing' = True is for stages sft and pt, not {config.stage!r}")
    if config.cuda_graphs:
        problem = cuda_graphs_problem(config, device)
        if problem:
            raise ConfigError(f"field 'cuda_graphs' = True cannot be used: {problem}")
    return config


def cuda_graphs_problem(config, device: str) -> str | None:
    """Why `cuda_graphs` cannot run with this config on `device` (None when it can). A captured graph
    replays fixed kernels on fixed buffers: one CUDA device, one input shape, nothing that syncs with
    or re-seeds the CPU inside the step."""
    from kit.train import distributed

    if not str(device).startswith("cuda"):
        return f"CUDA graphs need a CUDA GPU (this run uses {device!r}); set cuda_graphs: false"
    if not config.neat_packing:
        return ("every step must have one input shape: set neat_packing: true (the kit then pads each "
                "packed row to cutoff_len)")
    if compiled(config):
        return "torch_compile (or torch_compile_mode) is on: choose one of the two, not both"
    if use_gradient_checkpointing(config, device):
        return ("gradient checkpointing re-runs layers with saved random-number state, which a graph cannot "
                "capture: set disable_gradient_checkpointing: true")
    if config.flash_attn == "fa2":
        return ("flash_attn: fa2 finds the packed examples' boundaries at every step in tensors whose size "
                "depends on the data (a wait for the GPU), which a graph cannot hold; use flash_attn: auto or "
                "sdpa (a 4-D mask, an input of the graph)")
    if config.quantization_bit:
        return "quantized (QLoRA) layers are not supported: set quantization_bit: null or cuda_graphs: false"
    if distributed.world_size() > 1:
        return "this is a multi-process run: the graph is for one GPU (DDP's gradient hooks are not captured)"
    return None


def liger_active(config, device: str) -> bool:
    return config.enable_liger_kernel is True or (config.enable_liger_kernel == "auto" and not liger_problem(device))


def apply_liger(model, config, device: str) -> bool:
    """Patch `model` (a transformers model, before LoRA) with Liger's kernels for its architecture:
    RoPE, RMSNorm, SwiGLU and the fused linear cross-entropy (the logits are never materialised).
    In a compiled run (torch_compile) only the fused linear cross-entropy is applied: it runs outside
    the compiled layers, and inside them the compiler fuses RMSNorm, SwiGLU and RoPE itself.
    With cuda_graphs, neither of Liger's cross-entropy kernels is applied; the model's own loss
    (PyTorch's cross_entropy) runs instead. The fused kernel multiplies the hidden states by the
    vocabulary matrix a few tokens at a time, reading the whole matrix again for every chunk: it took
    25 ms of an 82 ms graphed step of Qwen2.5-0.5B (151k vocabulary, one 1,344-token row;
    bench/results/train_throughput_profiles/), while the logits it saves are 0.4 GB at that row
    length. Both Liger kernels also count the labels with `.item()`, which makes the CPU wait until
    the GPU has finished the graphed forward before it can queue anything else; PyTorch's
    cross-entropy takes the Trainer's token count as a GPU tensor and does not wait.
    Returns whether anything was applied; an architecture Liger does not know is a ConfigError."""
    if not liger_active(config, device):
        return False
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    model_type = getattr(model.config, "model_type", None)
    apply = MODEL_TYPE_TO_APPLY_LIGER_FN.get(model_type)
    if apply is None:
        if config.enable_liger_kernel == "auto":
            print(f"enable_liger_kernel: auto -> off (Liger has no kernels for model_type {model_type!r}).")
            return False
        raise ConfigError(f"field 'enable_liger_kernel' = True: Liger has no kernels for model_type "
                          f"{model_type!r}; known: {', '.join(sorted(MODEL_TYPE_TO_APPLY_LIGER_FN))}")
    kwargs = {}
    known = inspect.signature(apply).parameters
    if compiled(config):
        kwargs = {name: False for name in ("rope", "rms_norm", "swiglu", "layer_norm", "geglu") if name in known}
    if config.cuda_graphs:
        kwargs.update({name: False for name in ("fused_linear_cross_entropy", "cross_entropy") if name in known})
    apply(model=model, **kwargs)
    return True


def liger_kernels(config) -> list[str]:
    """The Liger kernels a run with enable_liger_kernel applies (where Liger runs at all)."""
    if compiled(config):
        return ["fused_linear_cross_entropy"]
    if config.cuda_graphs:
        return ["rope", "rms_norm", "swiglu"]
    return ["rope", "rms_norm", "swiglu", "fused_linear_cross_entropy"]


# ------------------------------------------------------------------------------- checkpointing

def use_gradient_checkpointing(config, device: str) -> bool:
    """disable_gradient_checkpointing None = LLaMA-Factory's default on a GPU (on) and off on CPU."""
    if config.disable_gradient_checkpointing is None:
        return str(device).startswith("cuda")
    return not config.disable_gradient_checkpointing


def enable_gradient_checkpointing(model, config) -> None:
    """Checkpoint every decoder layer, reentrant or not as `use_reentrant_gc` says. The reentrant
    implementation only back-propagates into layers whose input requires grad, so (as LLaMA-Factory
    does) the embedding output is made to require grad when the embeddings are frozen (LoRA)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": bool(config.use_reentrant_gc)})
    if config.use_reentrant_gc and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


# ------------------------------------------------------------------------------- packing

def packing_on(config) -> bool:
    """Whether rows are packed: neat_packing implies it; packing None = on for pt only (LLaMA-Factory)."""
    if config.neat_packing:
        return True
    return config.stage == "pt" if config.packing is None else bool(config.packing)


def pack_neat(features: dict, cutoff_len: int) -> dict:
    """Pack encoded examples (in order, greedily) into rows of at most cutoff_len tokens, keeping each
    example's identity: attention_mask = 1 for the first example of a row, 2 for the second, ...
    Each example's first label becomes -100 (it would predict across the boundary)."""
    rows_ids, rows_labels, rows_seg = [], [], []
    ids_row, labels_row, seg_row = [], [], []
    for ids, labels in zip(features["input_ids"], features["labels"]):
        ids, labels = list(ids)[:cutoff_len], list(labels)[:cutoff_len]
        if ids_row and len(ids_row) + len(ids) > cutoff_len:
            rows_ids.append(ids_row), rows_labels.append(labels_row), rows_seg.append(seg_row)
            ids_row, labels_row, seg_row = [], [], []
        segment = (seg_row[-1] if seg_row else 0) + 1
        ids_row = ids_row + ids
        labels_row = labels_row + [IGNORE_INDEX] + labels[1:]
        seg_row = seg_row + [segment] * len(ids)
    if ids_row:
        rows_ids.append(ids_row), rows_labels.append(labels_row), rows_seg.append(seg_row)
    return {"input_ids": rows_ids, "labels": rows_labels, "attention_mask": rows_seg}


def position_ids_from_segments(segments: list[int]) -> list[int]:
    """0, 1, 2, ... restarting at each new example (padding, segment 0, counts on from 0 too)."""
    out, previous, position = [], None, 0
    for seg in segments:
        position = position + 1 if seg == previous else 0
        out.append(position)
        previous = seg
    return out


def block_diagonal_mask(segments, dtype=None, positions=None):
    """[batch, 1, seq, seq] mask: query i sees key j iff j <= i and both belong to the same example.
    A padding token sees only itself (an all-masked row would give NaN in SDPA). bool (True = attend)
    when dtype is None, else additive (0 / dtype's minimum) for eager attention.

    Each example is one contiguous run of its segment id (as pack_neat writes them), so the keys a
    query i sees are the band start_i <= j <= i, where start_i = i - (i's position in its example):
    two comparisons per entry, computed in a few milliseconds per 4 x 1024 batch on a CPU (the
    collator runs on the training process's critical path). positions: the rows' position ids when
    the caller has them (position_ids_from_segments), else computed here."""
    import torch

    seg = torch.as_tensor(segments)
    seq = seg.shape[-1]
    index = torch.arange(seq)
    if positions is None:
        positions = [position_ids_from_segments(row) for row in seg.tolist()]
    positions = torch.as_tensor(positions)
    start = torch.where(seg > 0, index - positions, index)  # padding (segment 0): itself only
    keys = index[None, None, :]
    mask = (keys <= index[None, :, None]) & (keys >= start[:, :, None])
    mask = mask[:, None]
    if dtype is None:
        return mask
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)


def segment_lengths(segments: list[int]) -> list[int]:
    """Token count of each example in a packed row (padding left out)."""
    counts: dict[int, int] = {}
    for seg in segments:
        if seg > 0:
            counts[seg] = counts.get(seg, 0) + 1
    return list(counts.values())


class NeatPackingCollator:
    """Batches neat-packed rows: pads input_ids (pad id), labels (-100) and segments (0) to the
    longest row, adds restarting position_ids and the attention mask the kernel needs."""

    def __init__(self, tokenizer, attn_implementation: str | None = "sdpa", pad_to_multiple_of: int | None = None):
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.attn = attn_implementation or "sdpa"
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        ids, labels, segs, positions = [], [], [], []
        for f in features:
            pad = width - len(f["input_ids"])
            ids.append(list(f["input_ids"]) + [self.pad_id] * pad)
            labels.append(list(f["labels"]) + [IGNORE_INDEX] * pad)
            seg = list(f["attention_mask"]) + [0] * pad
            segs.append(seg)
            positions.append(position_ids_from_segments(seg))
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                 "position_ids": torch.tensor(positions)}
        if self.attn == "flash_attention_2":
            return batch  # transformers finds the example boundaries from the restarting position ids
        batch["attention_mask"] = block_diagonal_mask(segs, None if self.attn != "eager" else torch.float32,
                                                      positions=batch["position_ids"])
        return batch


def compiled(config) -> bool:
    """Whether the run compiles the model: torch_compile, or a torch_compile_mode (which implies it)."""
    return bool(config.torch_compile or config.torch_compile_mode is not None)


# ------------------------------------------------------------------------------- compilation

def repeated_blocks(model) -> list:
    """The model's decoder layers: the longest nn.ModuleList whose items are all of one class
    (`model.model.layers` in transformers' decoder models, under any wrapper such as peft's)."""
    import torch

    best = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best) \
                and len({type(item) for item in module}) == 1:
            best = list(module)
    return best


def compile_layers(model, config) -> list:
    """torch_compile: compile each decoder layer in place (regional compilation) and return them, for
    uncompile_layers after training; [] when the run is not compiled. The input embeddings are made
    to require grad, so the first layer's input is like every other layer's (with LoRA the embeddings
    are frozen) and one compiled graph serves all layers instead of two."""
    if not compiled(config):
        return []
    blocks = repeated_blocks(model)
    if len(blocks) < 2:
        raise ConfigError(f"field 'torch_compile' = True: no repeated decoder layers found in "
                          f"{type(model).__name__}; set torch_compile: false for this model")
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    mode = None if config.torch_compile_mode in (None, "default") else config.torch_compile_mode
    for block in blocks:
        block.compile(mode=mode)
    return blocks


def uncompile_layers(blocks: list) -> None:
    """Undo compile_layers: the layers run eagerly again (generation after training has a new shape
    at every step and would otherwise recompile)."""
    for block in blocks:
        block._compiled_call_impl = None


# ------------------------------------------------------------------------------- CUDA graphs

class DecoderGraph:
    """cuda_graphs: the decoder stack (embeddings, every layer, the final norm) runs as one captured
    CUDA graph forward and one backward, through PyTorch's `torch.cuda.make_graphed_callables`.

    Installed on the decoder module (`model.model` in transformers' causal LMs, under any wrapper).
    The first training forward with a neat-packed batch (input_ids, a 4-D block-diagonal mask,
    position_ids) captures the graphs with that batch's shapes; every later forward of the same
    shapes copies its inputs into the graph's buffers and replays. The language-model head and the
    loss (the model's own cross-entropy) run outside, as usual. Anything else (evaluation,
    generation, another shape) runs the decoder eagerly, as before; `eager_calls` counts those
    during training. `remove` restores the decoder's own forward.

    Two details of make_graphed_callables shape this class. Autocast must run without its cache
    while capturing (the capture uses the step's autocast dtype). A parameter's gradient comes back
    in the graph's static buffer; autograd may keep that buffer as `.grad` itself, so with gradient
    accumulation the next replay would overwrite an earlier micro-batch's gradient: then each
    trainable parameter gets a hook that hands autograd a copy."""

    needs_cuda = True  # a test of the routing on CPU turns this off (and fakes the capture)
    SAFE_KWARGS = {"use_cache": (None, False), "past_key_values": (None,), "cache": (None,), "inputs_embeds": (None,),
                   "cache_position": (None,), "return_dict": (None, True), "output_attentions": (None, False),
                   "output_hidden_states": (None, False)}

    def __init__(self, model, accumulation_steps: int = 1):
        self.decoder = decoder_module(model)
        self.graphed = None
        self.shapes = None
        self.captures = 0
        self.replays = 0
        self.eager_calls = 0
        self.own_forward = self.decoder.forward
        self.hooks = []
        if accumulation_steps > 1:
            self.hooks = [p.register_hook(lambda grad: grad.clone())
                          for p in self.decoder.parameters() if p.requires_grad]
        self.decoder.forward = self.forward

    def remove(self) -> None:
        if self.decoder.__dict__.get("forward") == self.forward:
            del self.decoder.forward
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        self.graphed = None

    def eligible(self, input_ids, attention_mask, position_ids, kwargs) -> bool:
        import torch

        if not (self.decoder.training and torch.is_grad_enabled()):
            return False
        if input_ids is None or attention_mask is None or position_ids is None or attention_mask.dim() != 4:
            return False
        if self.needs_cuda and not input_ids.is_cuda:
            return False
        for key, value in kwargs.items():
            if key == "num_items_in_batch":  # the Trainer's loss normaliser: the decoder does not use it
                continue
            if key not in self.SAFE_KWARGS or not any(value is ok for ok in self.SAFE_KWARGS[key]):
                return False
        return True

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        if not self.eligible(input_ids, attention_mask, position_ids, kwargs):
            if self.decoder.training:
                self.eager_calls += 1
            return self.own_forward(input_ids=input_ids, attention_mask=attention_mask,
                                    position_ids=position_ids, **kwargs)
        from transformers.modeling_outputs import BaseModelOutputWithPast

        args = (input_ids, attention_mask, position_ids)
        shapes = tuple((tuple(a.shape), a.dtype) for a in args)
        if self.graphed is None:
            self.capture(args)
            self.shapes = shapes
        elif shapes != self.shapes:
            self.eager_calls += 1
            return self.own_forward(input_ids=input_ids, attention_mask=attention_mask,
                                    position_ids=position_ids, **kwargs)
        self.replays += 1
        return BaseModelOutputWithPast(last_hidden_state=self.graphed(*args))

    def capture(self, args) -> None:
        import torch

        own_forward = self.own_forward

        class Call(torch.nn.Module):  # a module, so that its parameters (the decoder's) get gradients
            def __init__(self, decoder):
                super().__init__()
                self.decoder = decoder

            def forward(self, input_ids, attention_mask, position_ids):
                return own_forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   use_cache=False).last_hidden_state

        call = Call(self.decoder)
        call.train(self.decoder.training)
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
        with torch.autocast("cuda", dtype=dtype, enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False):
            self.graphed = torch.cuda.make_graphed_callables(call, args, num_warmup_iters=3)
        self.captures += 1


def decoder_module(model):
    """The decoder stack of a causal LM (embeddings, layers, final norm), under peft or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, "model", None)
    if decoder is None or decoder is base:
        raise ConfigError(f"field 'cuda_graphs' = True: no decoder module found in {type(base).__name__}; "
                          f"set cuda_graphs: false for this model")
    return decoder


def graph_decoder(model, config) -> DecoderGraph | None:
    """cuda_graphs: install a DecoderGraph (captured at the first training step); None when off."""
    if not config.cuda_graphs:
        return None
    return DecoderGraph(model, accumulation_steps=config.gradient_accumulation_steps)


def cudnn_attention_off(config, device: str) -> bool:
    """Whether attention_backends turns cuDNN attention off for this run (see there)."""
    return config.flash_attn == "auto" and bool(config.neat_packing) and str(device).startswith("cuda")


@contextlib.contextmanager
def attention_backends(config, device: str):
    """A neat-packed run with flash_attn: auto on CUDA trains with PyTorch's SDPA but without its
    cuDNN backend. The H200 profiles of 2026-11-30 (bench/results/train_throughput_profiles/) spent
    1.2-2.5 ms of CPU time per cuDNN attention call, 16-30 % of a step, while the GPU waited; without
    it, SDPA takes the memory-efficient kernel, which accepts the block-diagonal mask. Unpacked runs
    keep PyTorch's own choice. Restored afterwards."""
    import torch

    if not cudnn_attention_off(config, device):
        yield
        return
    was = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        yield
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)


def packing_collator(config, tokenizer, attn_implementation: str | None) -> NeatPackingCollator:
    """The neat-packing collator for a config. A compiled model re-traces (and, with CUDA graphs,
    re-records) for every new input shape, so a compiled run, or one with cuda_graphs, pads every
    packed row to cutoff_len: all its steps then have one shape."""
    return NeatPackingCollator(tokenizer, attn_implementation,
                               pad_to_multiple_of=config.cutoff_len if compiled(config) or config.cuda_graphs else None)


def causal_lm_trainer(ctx, train, evaluation):
    """A transformers Trainer for token-level stages (sft, pt): batches padded by
    DataCollatorForSeq2Seq (labels with IGNORE_INDEX), or by NeatPackingCollator when neat_packing."""
    from transformers import DataCollatorForSeq2Seq, Trainer

    collator = DataCollatorForSeq2Seq(ctx.tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
    if ctx.config.neat_packing:
        collator = packing_collator(ctx.config, ctx.tokenizer, getattr(ctx.model.config, "_attn_implementation", None))
    return Trainer(model=ctx.model, args=ctx.make_training_arguments(), train_dataset=train,
                   eval_dataset=evaluation, data_collator=collator, processing_class=ctx.tokenizer,
                   callbacks=ctx.callbacks)
