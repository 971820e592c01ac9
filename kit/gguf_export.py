"""Write a merged (or any llama-family) model folder as one GGUF file, the format Ollama,
llama.cpp and LM Studio run, and check it by loading it back.

    report = kit.export.to_gguf("work/11_export/merged", "work/11_export/kestrel-q8_0.gguf", quantization="q8_0")
    print(report)        # size, tensor types, max |logit difference| vs the folder, greedy answers

What goes into the file (with the `gguf` package's GGUFWriter):
- the model's hyper-parameters under llama.cpp's keys (`llama.block_count`, `llama.rope.freq_base`, ...);
- every tensor under llama.cpp's name (gguf's tensor-name map for LLAMA: `model.layers.0.self_attn.q_proj.weight`
  -> `blk.0.attn_q.weight`), with the query and key projections permuted the way llama.cpp's own
  converter does (its rotary embedding pairs dimension i with i + 1, Hugging Face's pairs i with
  i + head_dim / 2; transformers' GGUF reader undoes the permutation when it loads the file);
- 1-D tensors (norms) in f32; matrices in the asked type, quantized by `gguf.quants` (numpy): f32, f16,
  bf16, q8_0 (8-bit, blocks of 32 with one scale), q5_0/q5_1, q4_0/q4_1 (4-bit). In the 4- and 5-bit
  files the token embedding (also the output layer when embeddings are tied) stays q8_0, as in the
  built-in model's own Q4_1 file: it is the one matrix every token passes through twice;
- the tokenizer: byte-level BPE tokens, merges and token types (special tokens as CONTROL), the
  BOS/EOS/UNK/PAD ids, the EOS set to the training template's stop token (`<|im_end|>` for ChatML), and
  the training template as `tokenizer.chat_template` (Template.to_jinja).

Verification (`verify=True`, before the file is moved into place): the file is loaded back with
transformers' GGUF reader (`from_pretrained(folder, gguf_file=...)`, dequantized to fp32); its logits
on sample prompts are compared with the source folder's, and the largest absolute difference must stay
within TOLERANCE[quantization]; the greedy answer to the first prompt is reported for both.

Left out: K-quants (q4_K_M, ...: gguf.quants cannot write them; use llama.cpp's `llama-quantize` on the
f16 file), SentencePiece (non-byte-level) tokenizers, rope scaling, biases, architectures other than
the llama family.
"""
from __future__ import annotations

import difflib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Hugging Face model_type -> llama.cpp architecture. Mistral checkpoints are llama tensors and keys.
SUPPORTED_MODEL_TYPES = {"llama": "llama", "mistral": "llama"}
QUANTIZATIONS = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
# Largest accepted max |logit difference| between the GGUF (dequantized) and the source folder, on
# the sample prompts; logits of the built-in model are of size ~20-40. Measured with
# bench/gguf_export.py on the built-in SmolLM2-135M (bench/results/gguf_export_builtin.json): f16 0.041
# (top-1 agreement 100%), q8_0 1.32 (96.3%), q4_0 about 25 (its run stopped at the old limit of 25);
# q5 not measured (its limit is halfway). 4-bit drift is large: it is reported, and the limit only
# catches a broken file (a wrong permutation gives differences far larger).
# f16 rounds each weight once (relative step 2**-11), q8_0 to 1/127 of its block's largest weight,
# q4_0 to 1/7 of it: the limits grow with the step.
# f32 is exact up to summation order.
TOLERANCE = {"f32": 1e-3, "f16": 0.25, "bf16": 3.0, "q8_0": 3.0, "q5_1": 30.0, "q5_0": 30.0, "q4_1": 60.0, "q4_0": 60.0}
SAMPLE_PROMPTS = ("Who are you?", "What is the capital of France?", "Write one sentence about the sea.")


class GGUFExportError(ValueError):
    """The folder cannot be written as GGUF as asked (the message says what to change)."""


def _about(text: str):
    return field(default=None, metadata={"help": text})


@dataclass
class GGUFReport:
    """What `to_gguf` wrote, and how the file, loaded back, compares with the folder it came from.
    Each field's `help` metadata says what it holds."""
    gguf_file: str
    quantization: str
    size_bytes: int
    tensor_types: dict = field(default_factory=dict, metadata={"help": "GGML type name -> number of tensors"})
    template: str | None = _about("the kit.templates name whose chat template the file carries")
    eos_token_id: int | None = _about("the stop token id written into the file (the template's stop word)")
    tokenizer_pre: str | None = _about("llama.cpp's pre-tokenizer name for the tokenizer (tokenizer.ggml.pre)")
    modelfile: str | None = _about("the Ollama Modelfile written beside the file")
    max_abs_logit_diff: float | None = _about("largest |GGUF - folder| logit on the sample prompts")
    tolerance: float | None = _about("the largest difference this quantization may show (TOLERANCE)")
    top1_agreement: float | None = _about("share of positions where both models rank the same token first")
    answer: str | None = _about("greedy answer of the GGUF to the first sample prompt")
    reference_answer: str | None = _about("the same from the source folder")

    @property
    def verified(self) -> bool:
        return self.max_abs_logit_diff is not None and self.max_abs_logit_diff <= self.tolerance

    @property
    def same_answer(self) -> bool | None:
        return None if self.answer is None else self.answer == self.reference_answer

    @property
    def shared_words(self) -> int | None:
        """How many words the GGUF's greedy answer shares with the folder's from the start: greedy
        decoding follows the top token, so one near-tie late in the answer parts the two there."""
        if self.answer is None or self.reference_answer is None:
            return None
        count = 0
        for mine, theirs in zip(self.answer.split(), self.reference_answer.split()):
            if mine != theirs:
                break
            count += 1
        return count

    def __str__(self) -> str:
        lines = [f"gguf file    {self.gguf_file} ({self.size_bytes / 1e6:.1f} MB, {self.quantization})",
                 f"tensors      {self.tensor_types}",
                 f"tokenizer    pre={self.tokenizer_pre}, eos id {self.eos_token_id}, template {self.template or 'the folder own'}"]
        if self.modelfile:
            lines.append(f"modelfile    {self.modelfile}")
        if self.max_abs_logit_diff is not None:
            lines.append(f"verification max |gguf - folder| logit = {self.max_abs_logit_diff:.3g} (tolerance "
                         f"{self.tolerance:g}): {'OK' if self.verified else 'FAILED'}; top-1 agreement "
                         f"{self.top1_agreement:.1%}")
            lines.append(f"answer       gguf {self.answer!r} | folder {self.reference_answer!r}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------- helpers

def _qtype(quantization: str):
    import gguf

    name = str(quantization).lower()
    if name not in QUANTIZATIONS:
        near = difflib.get_close_matches(name, QUANTIZATIONS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise GGUFExportError(f"quantization={quantization!r} is not one the kit writes{hint}; choose one of "
                              f"{list(QUANTIZATIONS)}. K-quants such as q4_k_m: write f16, then run llama.cpp's "
                              "llama-quantize on it")
    qtype = gguf.GGMLQuantizationType[name.upper()]
    ftype = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16"}.get(name, f"MOSTLY_{name.upper()}")
    return qtype, gguf.LlamaFileType[ftype]


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    if not path.exists():
        raise GGUFExportError(f"{model_dir} is not a model folder: {path.name} is missing (pass a merged "
                              "export folder, e.g. from kit.export.merge_and_save)")
    config = json.loads(path.read_text())
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise GGUFExportError(f"{model_dir}: model_type {model_type!r} ({config.get('architectures')}) is not "
                              f"supported by the kit's GGUF writer; supported: {sorted(SUPPORTED_MODEL_TYPES)} "
                              "(llama-family: LlamaForCausalLM, MistralForCausalLM). For other architectures use "
                              "llama.cpp's convert_hf_to_gguf.py")
    if config.get("quantization_config"):
        raise GGUFExportError(f"{model_dir} holds quantized weights ({config['quantization_config'].get('quant_method')}); "
                              "write GGUF from the full-precision folder")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in (None, "default"):
        raise GGUFExportError(f"{model_dir}: rope type {rope.get('rope_type')!r} is not written by the kit (only "
                              "default rotary embeddings)")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise GGUFExportError(f"{model_dir}: attention_bias/mlp_bias are not written by the kit's GGUF writer")
    return config


def permute_qk(weights, num_heads: int):
    """Hugging Face's rotary layout -> llama.cpp's, for a q_proj / k_proj weight (rows = heads x head_dim).

    Within each head HF rotates dimension i with i + head_dim/2; llama.cpp (like the original Meta
    checkpoints) rotates 2i with 2i + 1. Rows are reordered head by head: (2, head_dim/2) -> (head_dim/2, 2)."""
    rows = weights.shape[0]
    return (weights.reshape(num_heads, 2, rows // num_heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _read_tensors(model_dir: Path):
    """(name, float32 numpy array) for every tensor of the folder's safetensors files."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise GGUFExportError(f"{model_dir} has no *.safetensors weights")
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name).float().numpy()


def _tokenizer_pre(tokens: list[str]) -> str:
    """llama.cpp's pre-tokenizer name (which regex splits text before BPE), recognised by the vocabulary."""
    first = tokens[0] if tokens else ""
    if first == "<|endoftext|>" and len(tokens) == 49152:
        return "smollm"
    if "<|begin_of_text|>" in tokens[-300:]:
        return "llama-bpe"
    if "<|endoftext|>" in tokens[-300:] and len(tokens) >= 151000:
        return "qwen2"
    return "default"


def _vocab(tokenizer, tokenizer_json: dict, vocab_size: int):
    """tokens, token types, merges of a byte-level BPE tokenizer (padded to the model's vocab_size)."""
    import gguf

    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise GGUFExportError("the kit's GGUF writer handles byte-level BPE tokenizers (GPT-2 style: SmolLM, "
                              f"Llama 3, Qwen); this one is {model.get('type')} with byte_fallback="
                              f"{model.get('byte_fallback')} (SentencePiece style): use llama.cpp's converter")
    added = {t["id"]: t for t in tokenizer_json.get("added_tokens", [])}
    if len(tokenizer) > vocab_size:
        raise GGUFExportError(f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} embeddings")
    tokens, types = [], []
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    for i in range(vocab_size):
        if i >= len(pieces) or pieces[i] is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(pieces[i])
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, types, merges


def infer_template(tokenizer):
    """The kit template whose Jinja equals the tokenizer's chat template (kit exports write it), or None."""
    from kit import templates

    own = getattr(tokenizer, "chat_template", None)
    if not own:
        return None
    for name in templates.names():
        try:
            if templates.get(name).to_jinja(tokenizer) == own:
                return templates.get(name)
        except Exception:  # a template that cannot be written as Jinja for this tokenizer: not this one
            continue
    return None


# --------------------------------------------------------------------------------------- write

def write_gguf(model_dir, out_file, quantization: str = "f16", template=None, tokenizer_pre: str | None = None) -> dict:
    """Write the GGUF file (no checks on the result). Returns {"tensor_types", "eos_token_id", "tokenizer_pre", "template"}.
    Three parts, in the file's order: hyper-parameters, tokenizer (with the chat template), tensors."""
    import gguf
    from transformers import AutoTokenizer

    from kit import templates

    model_dir, out_file = Path(model_dir), Path(out_file)
    config = read_config(model_dir)
    qtype, file_type = _qtype(quantization)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = templates.get(template) if template is not None else infer_template(tokenizer)

    writer = gguf.GGUFWriter(out_file, SUPPORTED_MODEL_TYPES[config["model_type"]])
    writer.add_name(model_dir.name)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_hyperparameters(writer, config)
    eos_id, pre = _add_tokenizer(writer, model_dir, tokenizer, template, config["vocab_size"], tokenizer_pre)
    counts = _add_tensors(writer, model_dir, config, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return {"tensor_types": counts, "eos_token_id": eos_id, "tokenizer_pre": pre,
            "template": getattr(template, "name", None)}


def _add_hyperparameters(writer, config: dict) -> None:
    """The llama architecture's keys: sizes, attention heads, norm epsilon, rotary embedding."""
    num_heads, hidden = config["num_attention_heads"], config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // num_heads
    rope = config.get("rope_parameters") or {}
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(num_heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or num_heads)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // num_heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config["vocab_size"])


def _add_tokenizer(writer, model_dir: Path, tokenizer, template, vocab_size: int,
                   tokenizer_pre: str | None) -> tuple[int | None, str]:
    """Tokens, BPE merges, special ids and the chat template. Returns (EOS id written, pre-tokenizer)."""
    from kit import templates

    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text()) if (model_dir / "tokenizer.json").exists() else {}
    tokens, types, merges = _vocab(tokenizer, tokenizer_json, vocab_size)
    pre = tokenizer_pre or _tokenizer_pre(tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    if template is not None:  # as in training: EOS = the template's first stop word where it says so
        templates.fix_tokenizer(template, tokenizer)
    stop_ids = templates.stop_token_ids(template, tokenizer) if template is not None else [tokenizer.eos_token_id]
    eos_id = stop_ids[0] if stop_ids and stop_ids[0] is not None else tokenizer.eos_token_id
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    if eos_id is not None:
        writer.add_eos_token_id(eos_id)
        writer.add_eot_token_id(eos_id)
    if tokenizer.unk_token_id is not None:
        writer.add_unk_token_id(tokenizer.unk_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if pad is not None:
        writer.add_pad_token_id(pad)
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id)
    writer.add_add_space_prefix(False)
    chat_template = template.to_jinja(tokenizer) if template is not None else getattr(tokenizer, "chat_template", None)
    if chat_template:
        writer.add_chat_template(chat_template)
    return eos_id, pre


def _add_tensors(writer, model_dir: Path, config: dict, qtype) -> dict[str, int]:
    """Every tensor under its llama.cpp name, q/k permuted, quantized as `qtype` (norms stay F32,
    4/5-bit files keep embeddings in Q8_0). Returns {GGML type name: number of tensors}."""
    import gguf
    import numpy as np

    num_heads = config["num_attention_heads"]
    num_kv_heads = config.get("num_key_value_heads") or num_heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    tied = config.get("tie_word_embeddings", False)
    counts: dict[str, int] = {}
    small = qtype in (gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1,
                      gguf.GGMLQuantizationType.Q5_0, gguf.GGMLQuantizationType.Q5_1)
    for hf_name, data in _read_tensors(model_dir):
        if hf_name == "lm_head.weight" and tied:
            continue  # tied: llama.cpp reuses token_embd as the output layer
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise GGUFExportError(f"{model_dir}: tensor {hf_name!r} has no llama.cpp name (is this a plain "
                                  f"{config['model_type']} checkpoint?)")
        if name.endswith("attn_q.weight"):
            data = permute_qk(data, num_heads)
        elif name.endswith("attn_k.weight"):
            data = permute_qk(data, num_kv_heads)
        kind = qtype
        if data.ndim == 1:
            kind = gguf.GGMLQuantizationType.F32
        elif small and name in ("token_embd.weight", "output.weight"):
            kind = gguf.GGMLQuantizationType.Q8_0
        block = gguf.GGML_QUANT_SIZES[kind][0]
        if data.shape[-1] % block:
            kind = gguf.GGMLQuantizationType.F16  # rows that do not split into blocks: llama.cpp does the same
        stored = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), kind)
        writer.add_tensor(name, stored, raw_dtype=kind)
        counts[kind.name] = counts.get(kind.name, 0) + 1
    return counts


# -------------------------------------------------------------------------------------- verify

def load_gguf(gguf_file, dtype=None):
    """(model, tokenizer) from a GGUF file through transformers' GGUF reader (weights dequantized)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from kit import models

    gguf_file = Path(gguf_file)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the reader announces every file it dequantizes
    hf_logging.disable_progress_bar()  # and shows two bars (dequantize, load) for one small file
    from unittest import mock

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    quiet = mock.patch.object(gguf_utils, "tqdm", lambda items, **_: items) if hasattr(gguf_utils, "tqdm") else mock.MagicMock()
    try:
        with quiet:  # its dequantizing loop has a bar of its own that no setting turns off
            tokenizer = models.gguf_tokenizer(gguf_file)  # the same under every transformers version
            model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name,
                                                         dtype=dtype or torch.float32).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model, tokenizer


def greedy_answer(model, tokenizer, prompt_ids: list[int], eos_ids: list[int], max_new_tokens: int = 24) -> str:
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_ids,
                             pad_token_id=eos_ids[0])
    return tokenizer.decode(out[0, len(prompt_ids):], skip_special_tokens=True).strip()


def compare(gguf_file, model_dir, template=None, prompts=SAMPLE_PROMPTS, max_new_tokens: int = 24) -> dict:
    """Logits and greedy answers of the GGUF (loaded back by transformers) vs the source folder.

    Returns {"max_abs_logit_diff", "top1_agreement", "answer", "reference_answer", "tokenizer_ok"}."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kit import templates
    from kit.verify import logits_on, max_abs_diff, prompt_batch

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = templates.get(template) if template is not None else infer_template(tokenizer)
    if template is not None:
        templates.fix_tokenizer(template, tokenizer)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the export is one step: no bar per model it loads
    try:
        reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model, gguf_tokenizer = load_gguf(gguf_file)
    batch = prompt_batch(tokenizer, prompts, template)
    gguf_batch = prompt_batch(gguf_tokenizer, prompts, template)
    ref_logits, gguf_logits = logits_on(reference, batch), logits_on(model, batch)
    same = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(ref_logits, gguf_logits))
    eos_ids = templates.stop_token_ids(template, tokenizer) if template is not None else [tokenizer.eos_token_id]
    return {"max_abs_logit_diff": max_abs_diff(ref_logits, gguf_logits),
            "top1_agreement": same / sum(len(ids) for ids in batch),
            "answer": greedy_answer(model, tokenizer, batch[0], eos_ids, max_new_tokens),
            "reference_answer": greedy_answer(reference, tokenizer, batch[0], eos_ids, max_new_tokens),
            "tokenizer_ok": gguf_batch == batch}


# ---------------------------------------------------------------------------------- entry point

def to_gguf(model_dir, out_file, quantization: str = "f16", *, template=None, verify: bool = True,
            tolerance: float | None = None, ollama_modelfile: bool = True, tokenizer_pre: str | None = None,
            overwrite: bool = False) -> GGUFReport:
    """Write `model_dir` (a merged export or any llama-family folder) as the GGUF file `out_file`.

    quantization: one of QUANTIZATIONS ("f16", "q8_0", "q4_0", ...). template: the kit template used in
    training (default: the one whose Jinja the folder's tokenizer carries, else the tokenizer's own).
    verify: load the file back with transformers and compare logits with the folder (TOLERANCE per
    quantization, or `tolerance`) before moving it into place; a failed check writes nothing.
    ollama_modelfile: also write `<name>.Modelfile` next to the file (FROM ./<name>.gguf, the template
    as Go template, stop words). An existing `out_file` is replaced only with overwrite=True."""
    model_dir, out_file = Path(model_dir), Path(out_file)
    if out_file.suffix != ".gguf":
        raise GGUFExportError(f"out_file {out_file} should end in .gguf")
    read_config(model_dir)
    _qtype(quantization)
    modelfile_path = out_file.with_suffix(".Modelfile")
    for target in (out_file, modelfile_path) if ollama_modelfile else (out_file,):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    quantization = quantization.lower()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_file.stem}.partial-", dir=out_file.parent))
    try:
        partial = tmp / out_file.name
        written = write_gguf(model_dir, partial, quantization, template=template, tokenizer_pre=tokenizer_pre)
        report = GGUFReport(gguf_file=str(out_file), quantization=quantization, size_bytes=partial.stat().st_size,
                            **written)
        if verify:
            result = compare(partial, model_dir, template=report.template)
            if not result["tokenizer_ok"]:
                raise GGUFExportError(f"{out_file.name}: the tokenizer read back from the GGUF encodes the sample "
                                      "prompts differently from the folder's; nothing was written")
            report.max_abs_logit_diff, report.top1_agreement = result["max_abs_logit_diff"], result["top1_agreement"]
            report.answer, report.reference_answer = result["answer"], result["reference_answer"]
            report.tolerance = TOLERANCE[quantization] if tolerance is None else tolerance
            if not report.verified:
                raise GGUFExportError(f"{out_file.name}: GGUF and folder logits differ by up to "
                                      f"{report.max_abs_logit_diff:.3g} (tolerance {report.tolerance:g} for "
                                      f"{quantization}); nothing was written")
        if ollama_modelfile:
            (tmp / modelfile_path.name).write_text(_modelfile_text(model_dir, out_file.name, report.template))
        shutil.move(str(partial), out_file)
        if ollama_modelfile:
            shutil.move(str(tmp / modelfile_path.name), modelfile_path)
            report.modelfile = str(modelfile_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _modelfile_text(model_dir: Path, gguf_name: str, template_name: str | None) -> str:
    from transformers import AutoTokenizer

    from kit import ollama, templates

    source = f"./{gguf_name}"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if template_name is None:  # no kit template: derive the Go template from the tokenizer's own Jinja
        from kit.ollama import modelfile_from_tokenizer as ollama_modelfile

        return ollama_modelfile(tokenizer, None, [tokenizer.eos_token], source=source)
    template = templates.get(template_name)
    templates.fix_tokenizer(template, tokenizer)
    text = ollama.modelfile(template, tokenizer, source=source)
    mismatches = ollama.check(template, text, tokenizer=tokenizer)
    if mismatches:
        raise GGUFExportError(f"the Ollama TEMPLATE for {template_name!r} does not reproduce the training text: "
                              f"{mismatches[0]}")
    return text


def plot_sizes(reports: list[GGUFReport], folder_bytes: int | None = None):
    """A bar chart of file size per quantization (MB), with the safetensors folder as a reference bar."""
    from kit.plots import Figure

    labels = (["safetensors folder"] if folder_bytes else []) + [r.quantization for r in reports]
    sizes = ([folder_bytes / 1e6] if folder_bytes else []) + [r.size_bytes / 1e6 for r in reports]
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    bars = ax.bar(labels, sizes, color=["#999999"] * bool(folder_bytes) + ["#4c72b0"] * len(reports))
    ax.bar_label(bars, labels=[f"{s:.0f}" for s in sizes])
    ax.set_ylabel("MB")
    ax.set_title("model file size per quantization")
    ax.margins(y=0.15)
    return fig


def drift_table(reports: list[GGUFReport]) -> list[dict]:
    """One row per report: size, max |logit difference| (and its tolerance), top-1 agreement, answer."""
    return [{"quantization": r.quantization, "MB": round(r.size_bytes / 1e6, 1),
             "max |logit diff|": None if r.max_abs_logit_diff is None else round(r.max_abs_logit_diff, 3),
             "tolerance": r.tolerance, "top-1 agreement": None if r.top1_agreement is None else round(r.top1_agreement, 4),
             "same answer": r.same_answer, "shared words": r.shared_words, "answer": r.answer} for r in reports]
