"""The registered template families, with names and strings as in LLaMA-Factory's template.py and the
models' published chat templates. Each family is derived from a parent where one exists, so only
the differences are written down:

    empty, default, alpaca, vicuna, baichuan2          plain-text and early formats
    chatml -> qwen -> qwen3 -> qwen3_nothink           ChatML (<|im_start|>role ... <|im_end|>)
    chatml -> yi, smollm -> smollm2                    ChatML without tool roles
    llama2 -> mistral;  gemma -> gemma3                system text fused into the first user turn
    llama3;  phi -> phi4;  deepseek -> deepseek3 -> deepseekr1;  glm4

More families (66 in all) are in more_families.py. Every family shared with LLaMA-Factory encodes
token for token as LLaMA-Factory 0.9.5 does (tests/test_lf_fidelity.py against fixtures written by
its own code), except the deliberate differences listed in LF_DIFFERENCES below, e.g. `smollm2`'s
default system has no final "." because the model's own tokenizer template has none. Mistral's
published v0.3 template puts the system text in the *last* user message; LLaMA-Factory and we put it
in the first. Not here: llava-style families whose processors rewrite the text.
"""
from __future__ import annotations

from kit.templates.formatter import BOS, EOS, EmptyFormatter, FunctionFormatter, StringFormatter, ToolFormatter
from kit.templates.registry import register_template


# (template, fixture case) -> why the kit deliberately encodes it differently from LLaMA-Factory
# (tests/test_lf_fidelity.py checks every other shared case token for token, and that these still differ)
_SMOLLM2_SYSTEM = ("the default system prompt has no final '.', as in SmolLM2's own tokenizer template "
                   "(LLaMA-Factory's smollm2 has one)")
LF_DIFFERENCES: dict[tuple[str, str], str] = {
    **{("smollm2", case): _SMOLLM2_SYSTEM for case in ("single", "multi_turn", "thoughts", "thoughts_mask_history",
                                                       "tools", "generate_thoughts")},
    ("llama3", "tools"): "the tool system prompt carries Llama 3.1's fixed 'Today Date: 26 Jul 2024' so encodings "
                         "are reproducible; LLaMA-Factory writes the day it runs",
    ("llama4", "tools"): "as llama3: a fixed date in the tool system prompt",
    ("phi4_mini", "tools"): "the kit writes tools in its default format; LLaMA-Factory wraps the JSON in <|tool|>",
    ("glm4_moe", "tools"): "the kit writes GLM-4's tool format; GLM-4.5's XML argument format is not implemented",
    ("seed_oss", "tools"): "the kit writes its default tool format; Seed-OSS's XML format is not implemented",
}


def S(*slots) -> StringFormatter:
    return StringFormatter(slots)


# --------------------------------------------------------------------------- plain-text formats
register_template("empty", format_assistant=S("{{content}}"))  # pre-training: the text, nothing else
register_template(
    "default",
    format_user=S("Human: {{content}}", EOS, "\nAssistant:"),
    format_assistant=S("{{content}}", EOS, "\n"),
    format_system=S("System: {{content}}", EOS, "\n"),
)
register_template(
    "alpaca",
    format_user=S("### Instruction:\n{{content}}\n\n### Response:\n"),
    format_assistant=S("{{content}}", EOS, "\n\n"),
    default_system="Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n",
)
register_template(
    "vicuna",
    format_user=S("USER: {{content}} ASSISTANT:"),
    default_system="A chat between a curious user and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the user's questions.",
)
register_template("baichuan2", format_user=S("<reserved_106>{{content}}<reserved_107>"), efficient_eos=True)

# --------------------------------------------------------------------------------------- ChatML
CHATML_USER = S("<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n")
register_template(
    "chatml",
    format_user=CHATML_USER,
    format_assistant=S("{{content}}<|im_end|>\n"),
    format_system=S("<|im_start|>system\n{{content}}<|im_end|>\n"),
    format_observation=S("<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n"),
    stop_words=["<|im_end|>", "<|im_start|>"],
    replace_eos=True,
    eos_token="<|im_end|>",
)
register_template(
    "qwen",
    base="chatml",
    format_function=FunctionFormatter(["{{content}}<|im_end|>\n"], tool_format="qwen"),
    format_observation=S("<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n"
                         "<|im_start|>assistant\n"),
    format_tools=ToolFormatter("qwen"),
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    stop_words=["<|im_end|>"],
    eos_token="<|endoftext|>",
)
register_template("qwen3", base="qwen", default_system="", reasoning=True)  # Qwen3: thinks by default
register_template("qwen3_nothink", base="qwen3", reasoning=False)  # Qwen3-2507 Instruct: never thinks
register_template("yi", base="chatml", format_observation=CHATML_USER, stop_words=["<|im_end|>"], replace_eos=False)
register_template("smollm", base="yi", eos_token="<|im_end|>", bos_token="<|im_start|>")
register_template(  # the built-in model: the default system prompt exactly as its tokenizer writes it
    "smollm2", base="smollm", default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
)

# ------------------------------------------------------------- system fused into the first turn
register_template(
    "llama2",
    format_user=S(BOS, "[INST] {{content}} [/INST]"),
    format_system=S("<<SYS>>\n{{content}}\n<</SYS>>\n\n"),
    fuse_system=True,
)
register_template(
    "mistral",
    base="llama2",
    format_user=S("[INST] {{content}}[/INST]"),
    format_assistant=S(" {{content}}", EOS),
    format_system=S("{{content}}\n\n"),
    format_function=FunctionFormatter(["[TOOL_CALLS] {{content}}", EOS], tool_format="mistral"),
    format_observation=S('[TOOL_RESULTS] {"content": {{content}}}[/TOOL_RESULTS]'),
    format_tools=ToolFormatter("mistral"),
    format_prefix=EmptyFormatter([BOS]),
)
register_template(
    "gemma",
    format_user=S("<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n"),
    format_assistant=S("{{content}}<end_of_turn>\n"),
    format_system=S("{{content}}\n\n"),
    format_observation=S("<start_of_turn>tool\n{{content}}<end_of_turn>\n<start_of_turn>model\n"),
    format_prefix=EmptyFormatter([BOS]),
    stop_words=["<end_of_turn>"],
    replace_eos=True, fuse_system=True,  # Gemma has no system turn: the system text joins the first user turn
    bos_token="<bos>",
    eos_token="<eos>",
)
register_template("gemma3", base="gemma")  # same text; Gemma 3 differs in its image tokens only

# --------------------------------------------------------------------------------------- others
def header_turns(start: str, end: str, eot: str) -> dict:
    """Llama 3-style turns, `<start>role<end>\n\n text <eot>`, as format_* arguments for register_template:
    Llama 3 spells the markers <|start_header_id|> <|end_header_id|> <|eot_id|>, Llama 4 <|header_start|>
    <|header_end|> <|eot|>. Tool results come back in the `ipython` role."""
    def head(role: str) -> str:
        return f"{start}{role}{end}\n\n"
    return dict(
        format_user=S(head("user") + "{{content}}" + eot + head("assistant")),
        format_assistant=S("{{content}}" + eot),
        format_system=S(head("system") + "{{content}}" + eot),
        format_function=FunctionFormatter(["{{content}}" + eot], tool_format="llama3"),
        format_observation=S(head("ipython") + "{{content}}" + eot + head("assistant")),
    )


register_template(
    "llama3",
    **header_turns("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    format_tools=ToolFormatter("llama3"),
    format_prefix=EmptyFormatter([BOS]),
    stop_words=["<|eot_id|>", "<|eom_id|>"],
    replace_eos=True,
    bos_token="<|begin_of_text|>",
    eos_token="<|end_of_text|>",
)
register_template(
    "phi",  # Phi-3
    format_user=S("<|user|>\n{{content}}<|end|>\n<|assistant|>\n"),
    format_assistant=S("{{content}}<|end|>\n"),
    format_system=S("<|system|>\n{{content}}<|end|>\n"),
    stop_words=["<|end|>"],
    replace_eos=True,
    eos_token="<|endoftext|>",
)
register_template(
    "phi4",
    base="phi",
    format_user=S("<|im_start|>user<|im_sep|>{{content}}<|im_end|><|im_start|>assistant<|im_sep|>"),
    format_assistant=S("{{content}}<|im_end|>"),
    format_system=S("<|im_start|>system<|im_sep|>{{content}}<|im_end|>"),
    stop_words=["<|im_end|>"],
)
register_template(
    "deepseek",  # DeepSeek LLM / V2 chat
    format_user=S("User: {{content}}\n\nAssistant:"),
    format_system=S("{{content}}\n\n"),
    format_prefix=EmptyFormatter([BOS]),
    bos_token="<｜begin▁of▁sentence｜>",
    eos_token="<｜end▁of▁sentence｜>",
)
register_template("deepseek3", base="deepseek", format_user=S("<｜User｜>{{content}}<｜Assistant｜>"),
                  format_system=S("{{content}}"))
register_template("deepseekr1", base="deepseek3", reasoning=True)
register_template(
    "glm4",
    format_user=S("<|user|>\n{{content}}<|assistant|>"),
    format_assistant=S("\n{{content}}"),
    format_system=S("<|system|>\n{{content}}"),
    format_function=FunctionFormatter(["{{content}}"], tool_format="glm4"),
    format_observation=S("<|observation|>\n{{content}}<|assistant|>"),
    format_tools=ToolFormatter("glm4"),
    format_prefix=EmptyFormatter(["[gMASK]<sop>"]),
    stop_words=["<|user|>", "<|observation|>"],
    efficient_eos=True,
    eos_token="<|endoftext|>",
)

from kit.templates import more_families as _more  # noqa: E402,F401  (registers the families learners meet today)
