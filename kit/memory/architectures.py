"""Config facts of popular decoder-only architectures, and parameter counts computed from them.

`ArchFacts` holds only what memory depends on: layer count, widths, head counts, vocabulary, tied
embeddings, biases, extra norms and (for mixture-of-experts) the expert count. `facts(x)` turns a
bundled name, a Hugging Face config (object or dict) or a loaded model into `ArchFacts`;
`ArchFacts.to_hf_config()` builds the matching transformers config, so a test can build each model
on the meta device and check that `num_params()` equals the real count.

The numbers below are copied from each model's public `config.json` on the Hugging Face hub.
Gemma-3 4B/12B/27B are multimodal: the facts describe the text decoder only (the vision tower,
about 0.4 B parameters, is not counted).
Not here: anything about bytes (estimate.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class ArchFacts:
    name: str
    model_type: str = field(metadata={"help": "transformers model_type: llama, qwen2, qwen3, gemma2, gemma3_text, mistral, mixtral"})
    num_hidden_layers: int = 0
    hidden_size: int = 0
    intermediate_size: int = 0
    num_attention_heads: int = 0
    num_key_value_heads: int = 0
    vocab_size: int = 0
    tie_word_embeddings: bool = False
    head_dim: int | None = field(default=None, metadata={"help": "None: hidden_size // num_attention_heads"})
    attention_bias: bool = field(default=False, metadata={"help": "bias on q/k/v projections (Qwen2)"})
    num_local_experts: int = field(default=1, metadata={"help": ">1 for a mixture-of-experts MLP"})
    num_experts_per_tok: int = 1
    max_position_embeddings: int = 32768

    # ------------------------------------------------------------------ derived sizes (numbers)
    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.hd

    @property
    def norms_per_layer(self) -> int:
        """Width-`hidden_size` RMSNorms per layer: 2 (pre-attention, pre-MLP); Gemma-2/3 add 2 post-norms."""
        return 4 if self.model_type in ("gemma2", "gemma3_text") else 2

    @property
    def has_qk_norm(self) -> bool:
        """Qwen3 and Gemma-3 normalise queries and keys per head (two RMSNorms of width head_dim)."""
        return self.model_type in ("qwen3", "gemma3_text")

    def linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Each per-layer linear: name -> (in_features, out_features, copies per layer). PEFT names."""
        experts = self.num_local_experts
        return {
            "q_proj": (self.hidden_size, self.q_dim, 1),
            "k_proj": (self.hidden_size, self.kv_dim, 1),
            "v_proj": (self.hidden_size, self.kv_dim, 1),
            "o_proj": (self.q_dim, self.hidden_size, 1),
            "gate_proj": (self.hidden_size, self.intermediate_size, experts),
            "up_proj": (self.hidden_size, self.intermediate_size, experts),
            "down_proj": (self.intermediate_size, self.hidden_size, experts),
        }

    def layer_linear_params(self) -> int:
        """Weights of the per-layer linears (what bitsandbytes quantizes), per layer."""
        return sum(i * o * n for i, o, n in self.linear_shapes().values())

    def layer_other_params(self) -> int:
        """Per-layer parameters that stay un-quantized: norms, q/k/v biases, MoE router."""
        n = self.norms_per_layer * self.hidden_size
        if self.has_qk_norm:
            n += 2 * self.hd
        if self.attention_bias:
            n += self.q_dim + 2 * self.kv_dim
        if self.num_local_experts > 1:
            n += self.hidden_size * self.num_local_experts  # router (gate), no bias
        return n

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        """0 when tied: the head reuses the embedding matrix."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def num_params(self) -> int:
        """Total parameters, counting a tied embedding once (as `model.num_parameters()` does)."""
        per_layer = self.layer_linear_params() + self.layer_other_params()
        return (self.embedding_params() + self.lm_head_params() + self.num_hidden_layers * per_layer
                + self.hidden_size)  # + final norm

    def active_params(self) -> int:
        """Parameters used per token (MoE: only `num_experts_per_tok` experts' MLPs)."""
        if self.num_local_experts == 1:
            return self.num_params()
        mlp = 3 * self.hidden_size * self.intermediate_size
        return self.num_params() - self.num_hidden_layers * mlp * (self.num_local_experts - self.num_experts_per_tok)

    # ------------------------------------------------------------------ transformers
    def to_hf_config(self):
        """The transformers config of this architecture (needs no hub access)."""
        from transformers import AutoConfig

        kwargs = dict(
            num_hidden_layers=self.num_hidden_layers, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads, vocab_size=self.vocab_size,
            tie_word_embeddings=self.tie_word_embeddings, max_position_embeddings=self.max_position_embeddings,
        )
        if self.head_dim is not None:
            kwargs["head_dim"] = self.head_dim
        if self.model_type in ("llama", "qwen3"):
            kwargs["attention_bias"] = self.attention_bias
        if self.model_type == "mixtral":
            kwargs.update(num_local_experts=self.num_local_experts, num_experts_per_tok=self.num_experts_per_tok)
        return AutoConfig.for_model(self.model_type, **kwargs)

    def as_dict(self) -> dict:
        return asdict(self)


_F = ArchFacts
ARCHITECTURES: dict[str, ArchFacts] = {f.name: f for f in [
    _F("SmolLM2-135M", "llama", 30, 576, 1536, 9, 3, 49152, True, max_position_embeddings=8192),
    _F("SmolLM2-360M", "llama", 32, 960, 2560, 15, 5, 49152, True, max_position_embeddings=8192),
    _F("SmolLM2-1.7B", "llama", 24, 2048, 8192, 32, 32, 49152, True, max_position_embeddings=8192),
    _F("Qwen2.5-0.5B", "qwen2", 24, 896, 4864, 14, 2, 151936, True, attention_bias=True),
    _F("Qwen2.5-1.5B", "qwen2", 28, 1536, 8960, 12, 2, 151936, True, attention_bias=True),
    _F("Qwen2.5-3B", "qwen2", 36, 2048, 11008, 16, 2, 151936, True, attention_bias=True),
    _F("Qwen2.5-7B", "qwen2", 28, 3584, 18944, 28, 4, 152064, False, attention_bias=True),
    _F("Qwen2.5-14B", "qwen2", 48, 5120, 13824, 40, 8, 152064, False, attention_bias=True),
    _F("Qwen2.5-32B", "qwen2", 64, 5120, 27648, 40, 8, 152064, False, attention_bias=True),
    _F("Qwen2.5-72B", "qwen2", 80, 8192, 29568, 64, 8, 152064, False, attention_bias=True),
    _F("Qwen3-0.6B", "qwen3", 28, 1024, 3072, 16, 8, 151936, True, head_dim=128),
    _F("Qwen3-1.7B", "qwen3", 28, 2048, 6144, 16, 8, 151936, True, head_dim=128),
    _F("Qwen3-4B", "qwen3", 36, 2560, 9728, 32, 8, 151936, True, head_dim=128),
    _F("Qwen3-8B", "qwen3", 36, 4096, 12288, 32, 8, 151936, False, head_dim=128),
    _F("Qwen3-14B", "qwen3", 40, 5120, 17408, 40, 8, 151936, False, head_dim=128),
    _F("Qwen3-32B", "qwen3", 64, 5120, 25600, 64, 8, 151936, False, head_dim=128),
    _F("Llama-3.2-1B", "llama", 16, 2048, 8192, 32, 8, 128256, True, head_dim=64),
    _F("Llama-3.2-3B", "llama", 28, 3072, 8192, 24, 8, 128256, True, head_dim=128),
    _F("Llama-3.1-8B", "llama", 32, 4096, 14336, 32, 8, 128256, False),
    _F("Llama-3.1-70B", "llama", 80, 8192, 28672, 64, 8, 128256, False),
    _F("Gemma-2-2B", "gemma2", 26, 2304, 9216, 8, 4, 256000, True, head_dim=256, max_position_embeddings=8192),
    _F("Gemma-2-9B", "gemma2", 42, 3584, 14336, 16, 8, 256000, True, head_dim=256, max_position_embeddings=8192),
    _F("Gemma-2-27B", "gemma2", 46, 4608, 36864, 32, 16, 256000, True, head_dim=128, max_position_embeddings=8192),
    _F("Gemma-3-1B", "gemma3_text", 26, 1152, 6912, 4, 1, 262144, True, head_dim=256),
    _F("Gemma-3-4B", "gemma3_text", 34, 2560, 10240, 8, 4, 262208, True, head_dim=256),
    _F("Gemma-3-12B", "gemma3_text", 48, 3840, 15360, 16, 8, 262208, True, head_dim=256),
    _F("Gemma-3-27B", "gemma3_text", 62, 5376, 21504, 32, 16, 262208, True, head_dim=128),
    _F("Mistral-7B", "mistral", 32, 4096, 14336, 32, 8, 32000, False),
    _F("Mixtral-8x7B", "mixtral", 32, 4096, 14336, 32, 8, 32000, False, num_local_experts=8, num_experts_per_tok=2),
]}

# Short aliases a learner may type ("qwen2.5-7b", "llama-3.1-8b-instruct", the built-in model's names).
_ALIASES = {"smollm2-135m-instruct": "SmolLM2-135M", "builtin": "SmolLM2-135M", "smollm2": "SmolLM2-135M"}


def names() -> list[str]:
    return list(ARCHITECTURES)


def lookup(name: str) -> ArchFacts:
    """Facts by bundled name, case-insensitive; '-Instruct', '-it' and an 'org/' prefix are ignored."""
    key = str(name).split("/")[-1].lower()
    for suffix in ("-instruct", "-it", "-chat", "-base", "-v0.1", "-v0.3"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    key = _ALIASES.get(key, key)
    for arch_name, arch in ARCHITECTURES.items():
        if arch_name.lower() == key.lower():
            return arch
    raise KeyError(f"unknown architecture {name!r}; bundled: {', '.join(ARCHITECTURES)} "
                   f"(or pass a transformers config, a config dict or a loaded model)")


def from_config(config, name: str | None = None) -> ArchFacts:
    """ArchFacts from a transformers config object or a config.json dict."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    if get("text_config") is not None:  # multimodal wrapper: use the text decoder
        return from_config(get("text_config"), name)
    missing = [k for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                           "vocab_size") if get(k) is None]
    if missing:
        raise ValueError(f"config lacks {', '.join(missing)}: cannot size the model")
    heads = int(get("num_attention_heads"))
    return ArchFacts(
        name=name or str(get("_name_or_path", None) or get("model_type", "custom")),
        model_type=str(get("model_type", "llama")),
        num_hidden_layers=int(get("num_hidden_layers")), hidden_size=int(get("hidden_size")),
        intermediate_size=int(get("intermediate_size")), num_attention_heads=heads,
        num_key_value_heads=int(get("num_key_value_heads") or heads), vocab_size=int(get("vocab_size")),
        tie_word_embeddings=bool(get("tie_word_embeddings", False)),
        head_dim=get("head_dim"), attention_bias=bool(get("attention_bias", get("model_type") == "qwen2")),
        num_local_experts=int(get("num_local_experts", 1) or 1),
        num_experts_per_tok=int(get("num_experts_per_tok", 1) or 1),
        max_position_embeddings=int(get("max_position_embeddings", 32768) or 32768),
    )


def facts(model) -> ArchFacts:
    """ArchFacts from a bundled name, a transformers config (object or dict), ArchFacts or a loaded model."""
    if isinstance(model, ArchFacts):
        return model
    if isinstance(model, (str, Path)):
        folder = Path(str(model)).expanduser()
        if (folder / "config.json").is_file():  # a local model folder: read its config.json
            import json

            return from_config(json.loads((folder / "config.json").read_text()), folder.name)
        try:
            return lookup(str(model))
        except KeyError:
            from kit import models  # the built-in model's cached folder, by any of its names

            if str(model).lower() in {a.lower() for a in getattr(models, "BUILTIN_ALIASES", ())}:
                return lookup("SmolLM2-135M")
            raise
    if hasattr(model, "config") and hasattr(model, "parameters"):
        return from_config(model.config, getattr(model.config, "_name_or_path", None))
    return from_config(model)


__all__ = ["ArchFacts", "ARCHITECTURES", "names", "lookup", "from_config", "facts", "replace"]
