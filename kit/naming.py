"""Read a model's name the way the source notes' naming table teaches (模型命名规则).

`describe_name("Qwen2-VL-2B-Instruct-GPTQ-Int8")` splits the name into dash-separated tags and
sorts each into a field: family and version ("Qwen", "2"), parameter count ("2B" = 2.0 billion),
kind (Base / Chat / Instruct / Distill / Math / Coder / RL ...), modality (VL / Video / Audio),
weight format (Int8 / Int4 / AWQ / GPTQ / GGUF / AQLM ...), MoE, variant (Pure / Character /
Long-Chat ...) and domain (RAG / Chinese / MT). `ModelName.explain()` turns that into prose.

Tag-valued fields are tuples in the order the tags appear, because one name can carry several
(`MiMo-7B-Instruct-RL` is both Instruct and RL). Tags we cannot read land in `unknown`, never
silently dropped.

Left out on purpose: facts the name does not state (an MoE's exact total size, the context length
of a model without a "32k"-style tag, the licence). A name is a hint; the model card is the truth.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

# ------------------------------------------------------------------------- the tag vocabulary
# Each entry: lower-case tag as written -> canonical tag. Meanings (with the notes' Chinese term)
# are in MEANINGS below; explain() uses them.
KINDS = {
    "base": "Base", "chat": "Chat", "instruct": "Instruct", "it": "Instruct", "distill": "Distill",
    "distilled": "Distill", "math": "Math", "coder": "Coder", "code": "Coder", "rl": "RL",
    "thinking": "Thinking", "reasoning": "Thinking", "sft": "SFT", "dpo": "DPO", "orpo": "ORPO",
    "rlhf": "RL", "reward": "Reward", "embedding": "Embedding", "guard": "Guard",
}
MODALITIES = {"vl": "VL", "vision": "VL", "video": "Video", "audio": "Audio", "omni": "Omni"}
WEIGHT_FORMATS = {
    "int8": "Int8", "int4": "Int4", "awq": "AWQ", "gptq": "GPTQ", "gguf": "GGUF", "aqlm": "AQLM",
    "fp8": "FP8", "bnb": "bnb", "mlx": "MLX", "exl2": "EXL2",
}
VARIANTS = {"pure": "Pure", "character": "Character", "lite": "Lite", "mini": "mini", "small": "Small",
            "medium": "Medium", "large": "Large", "nano": "nano", "tiny": "tiny"}
DOMAINS = {"rag": "RAG", "chinese": "Chinese", "mt": "MT"}
OTHER = {"hf": "hf", "preview": "Preview", "moe": "MoE", "fp16": "fp16", "bf16": "bf16", "f16": "fp16",
         "f32": "fp32", "fp32": "fp32"}
MAKERS = {"meta": "Meta"}  # a maker written in front of the family ("Meta-Llama-3.1-8B")
FAMILY_KINDS = {"codellama": "Coder", "starcoder": "Coder", "codegemma": "Coder", "codestral": "Coder",
                "mathstral": "Math", "qwq": "Thinking"}
FAMILIES = {  # who makes a family: only for explain()
    "qwen": "Alibaba's Qwen (通义千问)", "qwq": "Alibaba's Qwen reasoning line", "deepseek": "DeepSeek",
    "llama": "Meta's Llama", "gemma": "Google's Gemma", "mistral": "Mistral AI", "mixtral": "Mistral AI's MoE line",
    "smollm": "Hugging Face's small SmolLM", "phi": "Microsoft's Phi", "yi": "01.AI's Yi", "baichuan": "Baichuan",
    "chatglm": "Zhipu's ChatGLM", "glm": "Zhipu's GLM", "bloomz": "BigScience's BLOOM, multitask-tuned (Z)",
    "bloom": "BigScience's BLOOM", "orion": "OrionStar's Orion", "index": "bilibili's Index", "mimo": "Xiaomi's MiMo",
    "deepseek-r1": "DeepSeek's R1 reasoning model", "kimi": "Moonshot AI's Kimi", "llava": "LLaVA (a vision encoder joined to an LLM)", "internlm": "Shanghai AI Lab's InternLM",
    "hermes": "Nous Research's Hermes fine-tunes", "gpt-oss": "OpenAI's open-weight GPT", "olmo": "AI2's fully open OLMo",
}

MEANINGS = {
    "Base": "base model (基础模型): pre-trained only; it continues text and has no chat manners — fine-tune it, or prompt it as a text completer",
    "Chat": "chat model (对话优化模型): tuned for multi-turn dialogue; talk to it through its chat template",
    "Instruct": "instruction-tuned (指令微调模型): tuned to follow instructions; use its chat template",
    "Distill": "distilled (知识蒸馏模型): a student trained on a larger teacher's outputs, to copy its skill at a smaller size",
    "Math": "math model (数学推理模型): further trained on mathematics and step-by-step reasoning",
    "Coder": "code model (编程任务模型): further trained on source code",
    "RL": "RL-optimised (强化学习优化模型): improved with reinforcement learning (e.g. PPO/GRPO) after instruction tuning",
    "Thinking": "reasoning model: writes a long chain of thought before its answer",
    "SFT": "supervised fine-tuned (SFT) checkpoint",
    "DPO": "preference-tuned with DPO (direct preference optimisation)",
    "ORPO": "preference-tuned with ORPO",
    "Reward": "reward model: scores answers instead of writing them (used for RLHF)",
    "Embedding": "embedding model: turns text into vectors for search, not a text generator",
    "Guard": "safety classifier: labels prompts/answers as safe or unsafe",
    "VL": "vision-language (视觉-语言模型): takes images as well as text",
    "Video": "video model (视频多模态模型): takes video frames as well as text",
    "Audio": "audio model (音频输入模型): takes sound as well as text",
    "Omni": "omni-modal: text, images, audio and video in; text (and speech) out",
    "Int8": "8-bit integer weights (量化模型): about 1 byte per parameter",
    "Int4": "4-bit integer weights (量化模型): about half a byte per parameter",
    "AWQ": "AWQ (特定量化技术): activation-aware weight quantization, usually 4-bit, ready for inference",
    "GPTQ": "GPTQ (特定量化技术): post-training quantization that corrects errors layer by layer",
    "GGUF": "GGUF: llama.cpp's single-file format, usually with quantized weights (Q4_K_M, Q8_0, ...)",
    "AQLM": "AQLM: additive quantization with learned codebooks, down to about 2 bits per weight",
    "FP8": "8-bit floating-point weights",
    "bnb": "bitsandbytes quantization (what QLoRA loads with)",
    "MLX": "converted for Apple's MLX framework",
    "EXL2": "ExLlamaV2's quantized format",
    "MoE": "mixture of experts (混合专家模型): many expert feed-forward blocks, only a few run per token",
    "Pure": "pure version (纯净版模型): pre-trained without instruction data mixed in",
    "Character": "character / role-play chat (角色对话模型)",
    "Long-Chat": "long-context chat (长上下文模型): accepts much longer inputs",
    "Long": "long-context version",
    "Lite": "a lighter, smaller version of the line",
    "RAG": "retrieval-augmented generation (检索增强生成模型): tuned to answer from retrieved documents",
    "Chinese": "Chinese-optimised (中文优化模型): tuned on Chinese data",
    "MT": "multilingual / machine translation (翻译模型): for BLOOMZ, prompts machine-translated into many languages",
    "hf": "converted to the Hugging Face Transformers format",
    "Preview": "a preview release",
}

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([bmt])$", re.I)            # 14B, 1.5B, 135M, 1T
_SIZE_INFIX = re.compile(r"^(\d+)([bm])(\d+)$", re.I)            # BLOOM's 7B1 = 7.1B, 1b7 = 1.7B
_EXPERTS = re.compile(r"^(\d+)x(\d+(?:\.\d+)?)([bm])$", re.I)    # Mixtral's 8x7B
_ACTIVE = re.compile(r"^a(\d+(?:\.\d+)?)b$", re.I)                # A3B = 3B active per token
_CONTEXT = re.compile(r"^(\d+)([km])$", re.I)                     # 4k, 32k, 128K, 1M (after a size)
_VERSION = re.compile(r"^v\d+(?:\.\d+)*$", re.I)                  # v0.1, V2, v1.6
_NUMBER = re.compile(r"^\d+(?:\.\d+)*$")                          # 3, 3.1 after a family
_DATE = re.compile(r"^\d{4}$")                                    # 2407, 2507: YYMM release
_GLUED = re.compile(r"^([A-Za-z][A-Za-z]*[A-Za-z])(\d+(?:[._]\d+)*)$")  # Qwen2.5, SmolLM2, internlm2_5
_GGUF_QUANT = re.compile(r"^(i?q\d+(?:_[a-z0-9]+)*)$", re.I)       # Q4_K_M, Q4_1, IQ2_XS
_BITS = re.compile(r"^(\d+)-?bits?$", re.I)                       # 4bit, 2Bit
_UNIT = {"m": 1e-3, "b": 1.0, "t": 1e3}                           # -> billions of parameters


@dataclass(frozen=True)
class ModelName:
    """What a model's name says. Tag-valued fields are tuples in name order; () when absent."""

    raw: str = field(metadata={"help": "the name as given"})
    org: str | None = field(default=None, metadata={"help": "hub organisation ('Qwen' in 'Qwen/Qwen3-14B-Base') or a maker written in front ('Meta')"})
    family: str = field(default="", metadata={"help": "model line, e.g. 'Qwen', 'Llama', 'DeepSeek-R1'"})
    version: str | None = field(default=None, metadata={"help": "generation or version tag: '3', '2.5', 'v0.1', 'V2'"})
    release: str | None = field(default=None, metadata={"help": "a YYMM release date such as '2507'"})
    params: str | None = field(default=None, metadata={"help": "size tag(s) as written: '14B', '8x7B', '30B-A3B', '7B1'"})
    params_billion: float | None = field(default=None, metadata={"help": "total parameters in billions, where the name states it"})
    active_params_billion: float | None = field(default=None, metadata={"help": "MoE: parameters used per token, in billions ('A3B')"})
    experts: int | None = field(default=None, metadata={"help": "MoE: number of experts when written as '8x7B'"})
    expert_params_billion: float | None = field(default=None, metadata={"help": "MoE: the size each expert model is named after ('7' in '8x7B')"})
    kinds: tuple = field(default=(), metadata={"help": "Base / Chat / Instruct / Distill / Math / Coder / RL / ..."})
    modality: tuple = field(default=(), metadata={"help": "VL / Video / Audio / Omni; () = text only"})
    weight_format: tuple = field(default=(), metadata={"help": "Int8 / Int4 / AWQ / GPTQ / GGUF / AQLM / FP8 / bnb ..."})
    bits: int | None = field(default=None, metadata={"help": "bits per weight, where the name states it (Int4 -> 4)"})
    moe: bool = field(default=False, metadata={"help": "mixture of experts (a MoE tag, 'NxM' or 'A..B' size)"})
    variant: tuple = field(default=(), metadata={"help": "Pure / Character / Long-Chat / Lite / mini ..."})
    domain: tuple = field(default=(), metadata={"help": "RAG / Chinese / MT"})
    context: str | None = field(default=None, metadata={"help": "context length tag: '4k', '32k', '1M'"})
    base: str | None = field(default=None, metadata={"help": "another model named inside: the student of a Distill, the LLM inside a VL model, the model a fine-tune starts from"})
    other: tuple = field(default=(), metadata={"help": "tags read but outside the fields above ('hf', 'Q4_K_M', 'Preview')"})
    unknown: tuple = field(default=(), metadata={"help": "tags this reader does not know"})

    def stated(self) -> dict:
        """Only the fields the name states: {"family": "Qwen", "params": "14B", ...} (empty ones left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "raw" and getattr(self, f.name) not in (None, (), False, "")}

    @property
    def is_quantized(self) -> bool:
        return any(f != "hf" for f in self.weight_format)

    def weight_gib(self, bits: int | None = None) -> float | None:
        """Memory of the weights alone in GiB: params x bits / 8 bytes (default: the name's bits, else 16)."""
        if self.params_billion is None:
            return None
        bits = bits or self.bits or 16
        return self.params_billion * 1e9 * bits / 8 / 2**30  # bytes -> GiB

    def explain(self) -> str:
        """A learner-friendly reading of the name, one line per thing it says."""
        lines = [f"{self.raw}"]
        maker = FAMILIES.get(self.family.lower()) or FAMILIES.get(self.family.split("-")[0].lower())
        fam = f"family     {self.family}" + (f" — {maker}" if maker else "")
        if self.version:
            fam += f"; version {self.version}"
        if self.release:
            fam += f"; release {self.release[:2]}/{self.release[2:]} (YY/MM)"
        lines.append(fam)
        if self.org:
            lines.append(f"org        {self.org} (who publishes it on the hub)")
        if self.params:
            lines.append(f"size       {self.params}: {self._size_text()}")
        else:
            lines.append("size       not in the name (see the model card)")
        lines += _tagged("kind", self.kinds, lambda tag: MEANINGS.get(tag, tag))
        if not self.kinds:
            lines.append("kind       no Base/Chat/Instruct tag: often a base model, but check the model card "
                         "(Qwen3-8B, for one, is the post-trained model)")
        if "Distill" in self.kinds:
            student = f"a {self.base} model" if self.base else "a smaller model"
            size = f" of {self.params}" if self.params else ""
            lines.append(f"           teacher = {self.family}, student = {student}{size}: it has the student's "
                         f"architecture and tokenizer, trained on answers written by {self.family}")
        elif self.base:
            lines.append(f"built on   {self.base} (another model named inside this one)")
        lines += _tagged("modality", self.modality, MEANINGS.__getitem__)
        if self.moe:
            lines.append(f"MoE        {MEANINGS['MoE']}")
        lines += _tagged("weights", self.weight_format, lambda tag: MEANINGS.get(tag, tag))
        if self.bits and self.params_billion:
            lines.append(f"           ≈ {self.weight_gib():.1f} GiB of weights at {self.bits} bits "
                         f"(vs {self.weight_gib(16):.1f} GiB in 16-bit)")
        lines += _tagged("variant", self.variant, lambda tag: MEANINGS.get(tag, "a size/edition label of the line"))
        lines += _tagged("domain", self.domain, MEANINGS.__getitem__)
        if self.context:
            lines.append(f"context    {self.context} tokens of context")
        lines += _tagged("also", self.other,
                         lambda tag: MEANINGS.get(tag, "GGUF quantization type" if _GGUF_QUANT.match(tag) else tag))
        if self.unknown:
            lines.append(f"not read   {', '.join(self.unknown)} (unknown tags: look them up on the model card)")
        return "\n".join(lines)

    def _size_text(self) -> str:
        if self.experts and self.expert_params_billion:
            nominal = self.experts * self.expert_params_billion
            return (f"{self.experts} experts, each the size of a {_fmt(self.expert_params_billion)}B model; "
                    f"fewer than {self.experts}×{_fmt(self.expert_params_billion)} = {_fmt(nominal)}B in total, because the "
                    f"experts share attention and embeddings (the exact total is on the model card)")
        parts = []
        if self.params_billion is not None:
            parts.append(f"≈ {_fmt(self.params_billion)} billion parameters in total "
                         f"(≈ {self.weight_gib(16):.1f} GiB of weights in 16-bit, 2 bytes each)")
        if self.active_params_billion is not None:
            parts.append(f"{_fmt(self.active_params_billion)}B active per token (A = active)")
        return "; ".join(parts)


def _tagged(label: str, tags, meaning) -> list[str]:
    """One explain() line per tag: "label      tag: meaning(tag)"."""
    return [f"{label:<11}{tag}: {meaning(tag)}" for tag in tags]


def _fmt(x: float) -> str:
    return f"{x:g}"


def describe_name(name: str) -> ModelName:
    """Read a model name: `describe_name("Qwen/Qwen3-14B-Base").params_billion == 14.0`.

    Three steps: split off the organisation and a GGUF file suffix (`_start_fields`), sort each
    dash-separated tag into a field (`_read_tag`), then build the ModelName (`_build_name`)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"describe_name needs a non-empty model name string, got {name!r}")
    f, stem = _start_fields(name.strip())
    tokens = [t for t in stem.split("-") if t]
    state = "start"  # start -> family -> (closed); tracks where a bare number belongs
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
        state = _read_tag(f, tok, nxt, state, first=i == 0)
    return _build_name(f)


def _start_fields(raw: str) -> tuple[dict, str]:
    """The empty field lists, plus the org ("Qwen/...") and a GGUF file suffix (".gguf", ".Q4_1") taken off."""
    f: dict = {"raw": raw, "kinds": [], "modality": [], "weight_format": [], "variant": [], "domain": [],
               "other": [], "unknown": [], "family": [], "base": [], "sizes": []}
    stem = raw.rstrip("/")
    if "/" in stem:
        f["org"], stem = stem.rsplit("/", 1)
    if stem.lower().endswith(".gguf"):
        stem = stem[: -len(".gguf")]
        f["weight_format"].append("GGUF")
    quant = re.search(r"[.-](i?q\d+(?:_[a-z0-9]+)*|f16|bf16|f32)$", stem, re.I)
    if quant and "." in quant.group(0):      # SmolLM2-135M-Instruct.Q4_1
        stem = stem[: quant.start()]
        _add(f["weight_format"], "GGUF")
        _set_bits(f, quant.group(1))
        f["other"].append(quant.group(1).upper())
    return f, stem


def _read_tag(f: dict, tok: str, nxt: str, state: str, first: bool) -> str:
    """Sort one tag into `f`; returns the new state."""
    low = tok.lower()
    if state == "start" and low in MAKERS and nxt and first:
        f.setdefault("org", MAKERS[low])
        return state
    if _size_tag(f, tok):
        return "closed"
    number_state = _number_tag(f, tok, state)
    if number_state:
        return number_state
    if _vocabulary_tag(f, tok, nxt, state):
        return "closed"
    return _name_tag(f, tok, state)


def _size_tag(f: dict, tok: str) -> bool:
    """8x7B, A3B, 14B, 7B1 and context tags such as 32k."""
    if m := _EXPERTS.match(tok):
        f["experts"] = int(m.group(1))
        f["expert_params_billion"] = float(m.group(2)) * _UNIT[m.group(3).lower()]
        f["moe"] = True
        f["sizes"].append(tok)
    elif m := _ACTIVE.match(tok):
        f["active_params_billion"] = float(m.group(1))
        f["moe"] = True
        f["sizes"].append(tok)
    elif (m := _SIZE.match(tok)) and not (f["sizes"] and m.group(2).lower() == "m"):
        f.setdefault("params_billion", float(m.group(1)) * _UNIT[m.group(2).lower()])
        f["sizes"].append(tok[:-1] + tok[-1].upper())
    elif m := _SIZE_INFIX.match(tok):
        f.setdefault("params_billion", float(f"{m.group(1)}.{m.group(3)}") * _UNIT[m.group(2).lower()])
        f["sizes"].append(tok.upper())
    elif _CONTEXT.match(tok):
        f["context"] = tok
    else:
        return False
    return True


def _number_tag(f: dict, tok: str, state: str) -> str | None:
    """v0.1, a YYMM release, or a bare version number; returns the new state (None: not a number tag)."""
    if _VERSION.match(tok):
        _version(f, tok)
    elif _DATE.match(tok) and state != "start":
        f["release"] = tok
    elif _NUMBER.match(tok) and state != "start":
        if state == "base":              # Hermes-3-Llama-3.1-8B: the base's version
            f["base"][-1] += f"-{tok}"
            return "base"
        if f.get("version"):
            f["unknown"].append(tok)
        else:                            # gemma-2, Llama-3.1, Llama-Guard-3
            f["version"] = tok
    else:
        return None
    return "closed"


def _vocabulary_tag(f: dict, tok: str, nxt: str, state: str) -> bool:
    """A tag from the vocabulary tables: kind, modality, weight format, bits, variant, domain, other."""
    low = tok.lower()
    if low == "long":
        f["variant"].append("Long-Chat" if nxt == "chat" else "Long")
    elif low in KINDS:
        _add(f["kinds"], KINDS[low])
    elif low in MODALITIES:
        _add(f["modality"], MODALITIES[low])
    elif low in WEIGHT_FORMATS:
        _add(f["weight_format"], WEIGHT_FORMATS[low])
        if low in ("int8", "int4", "fp8"):
            _set_bits(f, low)
    elif m := _BITS.match(tok):
        f["bits"] = int(m.group(1))
        if not f["weight_format"]:
            f["weight_format"].append(f"{m.group(1)}bit")
    elif low in VARIANTS:
        _add(f["variant"], VARIANTS[low])
    elif low in DOMAINS:
        _add(f["domain"], DOMAINS[low])
    elif low in OTHER:
        if low == "moe":
            f["moe"] = True
        else:
            f["other"].append(OTHER[low])
    elif _GGUF_QUANT.match(tok) and state != "start" and any(c.isdigit() for c in tok):
        _add(f["weight_format"], "GGUF")
        _set_bits(f, tok)
        f["other"].append(tok.upper())
    elif re.match(r"^\d+x\d+$", tok) and "AQLM" in f["weight_format"]:
        f["other"].append(f"{tok} (AQLM codebooks x bits per code)")
    else:
        return False
    return True


def _name_tag(f: dict, tok: str, state: str) -> str:
    """A word: part of the family name, another model named inside (the base), or unknown."""
    if not tok[0].isalpha():
        f["unknown"].append(tok)
        return "closed"
    if state in ("start", "family"):
        glued = _GLUED.match(tok)
        if glued and not f["family"]:
            f["family"].append(glued.group(1))
            f["version"] = glued.group(2).replace("_", ".")
            return "closed"
        f["family"].append(tok)
        return "family"
    stem_name = (_GLUED.match(tok).group(1) if _GLUED.match(tok) else tok).lower()
    if stem_name in FAMILIES or (f["kinds"] and f["kinds"][-1] == "Distill" and not f["base"]):
        f["base"].append(tok)      # Distill-Qwen, Hermes-3-Llama, llava-v1.6-mistral
        return "base"
    f["unknown"].append(tok)
    return "closed"


def _build_name(f: dict) -> ModelName:
    """The ModelName from the sorted tags: the family's implied kind first, MoE from several sizes."""
    family = "-".join(f["family"])
    fam_kind = FAMILY_KINDS.get(family.lower())
    if fam_kind and fam_kind not in f["kinds"]:
        f["kinds"].insert(0, fam_kind)
    if len(f["sizes"]) > 1 or f.get("experts") or f.get("active_params_billion"):
        f["moe"] = True
    return ModelName(
        raw=f["raw"], org=f.get("org"), family=family, version=f.get("version"), release=f.get("release"),
        params="-".join(f["sizes"]) or None, params_billion=_round(f.get("params_billion")),
        active_params_billion=f.get("active_params_billion"), experts=f.get("experts"),
        expert_params_billion=f.get("expert_params_billion"), kinds=tuple(f["kinds"]),
        modality=tuple(f["modality"]), weight_format=tuple(f["weight_format"]), bits=f.get("bits"),
        moe=bool(f.get("moe")), variant=tuple(f["variant"]), domain=tuple(f["domain"]),
        context=f.get("context"), base="-".join(f["base"]) or None, other=tuple(f["other"]),
        unknown=tuple(f["unknown"]),
    )


def _add(items: list, tag: str) -> None:
    if tag not in items:
        items.append(tag)


def _set_bits(f: dict, tag: str) -> None:
    digits = re.search(r"\d+", tag)
    if digits:
        f["bits"] = int(digits.group(0))


def _version(f: dict, tok: str) -> None:
    if f.get("version"):
        f["other"].append(tok)
    else:
        f["version"] = tok


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)
