"""kit.naming.describe_name reads every name of the notes' naming table and common real names.

Each row lists the fields the name states; fields not listed must be empty (None / () / False),
so a tag read into the wrong field fails the test.
"""
import dataclasses

import pytest

from kit import models
from kit.naming import ModelName, describe_name

EMPTY = {f.name: f.default for f in dataclasses.fields(ModelName) if f.name != "raw"}

# name -> the fields it states (everything else must stay empty)
CASES = {
    # --- every example of the notes' table (llama-factory-notes.zh.md, 五.1 选择模型; DIGEST item 5)
    "Qwen3-14B-Base": dict(family="Qwen", version="3", params="14B", params_billion=14.0, kinds=("Base",)),
    "DeepSeek-LLM-7B-Chat": dict(family="DeepSeek-LLM", params="7B", params_billion=7.0, kinds=("Chat",)),
    "Qwen3-0.6B-Instruct": dict(family="Qwen", version="3", params="0.6B", params_billion=0.6, kinds=("Instruct",)),
    "DeepSeek-R1-1.5B-Distill": dict(family="DeepSeek-R1", params="1.5B", params_billion=1.5, kinds=("Distill",)),
    "DeepSeek-Math-7B-Instruct": dict(family="DeepSeek", params="7B", params_billion=7.0, kinds=("Math", "Instruct")),
    "DeepSeek-Coder-V2-16B": dict(family="DeepSeek", version="V2", params="16B", params_billion=16.0, kinds=("Coder",)),
    "Kimi-VL-A3B-Instruct": dict(family="Kimi", params="A3B", active_params_billion=3.0, moe=True,
                                 kinds=("Instruct",), modality=("VL",)),
    "LLaVA-NeXT-Video-7B-Chat": dict(family="LLaVA-NeXT", params="7B", params_billion=7.0, kinds=("Chat",),
                                     modality=("Video",)),
    "Qwen2-Audio-7B": dict(family="Qwen", version="2", params="7B", params_billion=7.0, modality=("Audio",)),
    "Qwen2-VL-2B-Instruct-GPTQ-Int8": dict(family="Qwen", version="2", params="2B", params_billion=2.0,
                                           kinds=("Instruct",), modality=("VL",), weight_format=("GPTQ", "Int8"),
                                           bits=8),
    "Qwen2.5-VL-72B-Instruct-AWQ": dict(family="Qwen", version="2.5", params="72B", params_billion=72.0,
                                        kinds=("Instruct",), modality=("VL",), weight_format=("AWQ",)),
    "DeepSeek-MoE-16B-Chat": dict(family="DeepSeek", params="16B", params_billion=16.0, moe=True, kinds=("Chat",)),
    "MiMo-7B-Instruct-RL": dict(family="MiMo", params="7B", params_billion=7.0, kinds=("Instruct", "RL")),
    "Mistral-7B-v0.1": dict(family="Mistral", version="v0.1", params="7B", params_billion=7.0),
    "Index-1.9B-Base": dict(family="Index", params="1.9B", params_billion=1.9, kinds=("Base",)),
    "Index-1.9B-Pure": dict(family="Index", params="1.9B", params_billion=1.9, variant=("Pure",)),
    "Index-1.9B-Character-Chat": dict(family="Index", params="1.9B", params_billion=1.9, kinds=("Chat",),
                                      variant=("Character",)),
    "Orion-14B-Long-Chat": dict(family="Orion", params="14B", params_billion=14.0, kinds=("Chat",),
                                variant=("Long-Chat",)),
    "Orion-14B-RAG-Chat": dict(family="Orion", params="14B", params_billion=14.0, kinds=("Chat",), domain=("RAG",)),
    "Llama-3-70B-Chinese-Chat": dict(family="Llama", version="3", params="70B", params_billion=70.0,
                                     kinds=("Chat",), domain=("Chinese",)),
    "BLOOMZ-7B1-mt": dict(family="BLOOMZ", params="7B1", params_billion=7.1, domain=("MT",)),
    # --- the real names
    "google/gemma-2-9b-it": dict(org="google", family="gemma", version="2", params="9B", params_billion=9.0,
                                 kinds=("Instruct",)),
    "Mixtral-8x7B-Instruct-v0.1": dict(family="Mixtral", version="v0.1", params="8x7B", experts=8,
                                       expert_params_billion=7.0, moe=True, kinds=("Instruct",)),
    "DeepSeek-R1-Distill-Qwen-1.5B": dict(family="DeepSeek-R1", base="Qwen", params="1.5B", params_billion=1.5,
                                          kinds=("Distill",)),
    "Meta-Llama-3.1-8B-Instruct": dict(org="Meta", family="Llama", version="3.1", params="8B", params_billion=8.0,
                                       kinds=("Instruct",)),
    "meta-llama/Meta-Llama-3.1-8B-Instruct": dict(org="meta-llama", family="Llama", version="3.1", params="8B",
                                                  params_billion=8.0, kinds=("Instruct",)),
    "SmolLM2-135M-Instruct": dict(family="SmolLM", version="2", params="135M", params_billion=0.135,
                                  kinds=("Instruct",)),
    # --- a dozen more common real names
    "Qwen/Qwen3-14B-Base": dict(org="Qwen", family="Qwen", version="3", params="14B", params_billion=14.0,
                                kinds=("Base",)),
    "Qwen/Qwen3-30B-A3B": dict(org="Qwen", family="Qwen", version="3", params="30B-A3B", params_billion=30.0,
                               active_params_billion=3.0, moe=True),
    "Qwen3-235B-A22B-Thinking-2507": dict(family="Qwen", version="3", release="2507", params="235B-A22B",
                                          params_billion=235.0, active_params_billion=22.0, moe=True,
                                          kinds=("Thinking",)),
    "Qwen1.5-MoE-A2.7B-Chat": dict(family="Qwen", version="1.5", params="A2.7B", active_params_billion=2.7,
                                   moe=True, kinds=("Chat",)),
    "Qwen2.5-Coder-7B-Instruct": dict(family="Qwen", version="2.5", params="7B", params_billion=7.0,
                                      kinds=("Coder", "Instruct")),
    "Qwen2.5-7B-Instruct-1M": dict(family="Qwen", version="2.5", params="7B", params_billion=7.0,
                                   kinds=("Instruct",), context="1M"),
    "microsoft/Phi-3-mini-4k-instruct": dict(org="microsoft", family="Phi", version="3", variant=("mini",),
                                             context="4k", kinds=("Instruct",)),
    "Phi-3.5-MoE-instruct": dict(family="Phi", version="3.5", moe=True, kinds=("Instruct",)),
    "meta-llama/Llama-2-7b-chat-hf": dict(org="meta-llama", family="Llama", version="2", params="7B",
                                          params_billion=7.0, kinds=("Chat",), other=("hf",)),
    "Llama-3.2-11B-Vision-Instruct": dict(family="Llama", version="3.2", params="11B", params_billion=11.0,
                                          kinds=("Instruct",), modality=("VL",)),
    "TheBloke/Llama-2-7B-Chat-GGUF": dict(org="TheBloke", family="Llama", version="2", params="7B",
                                          params_billion=7.0, kinds=("Chat",), weight_format=("GGUF",)),
    "SmolLM2-135M-Instruct.Q4_1.gguf": dict(family="SmolLM", version="2", params="135M", params_billion=0.135,
                                            kinds=("Instruct",), weight_format=("GGUF",), bits=4, other=("Q4_1",)),
    "qwen2.5-7b-instruct-q4_k_m.gguf": dict(family="qwen", version="2.5", params="7B", params_billion=7.0,
                                            kinds=("Instruct",), weight_format=("GGUF",), bits=4, other=("Q4_K_M",)),
    "unsloth/Qwen2.5-7B-Instruct-bnb-4bit": dict(org="unsloth", family="Qwen", version="2.5", params="7B",
                                                 params_billion=7.0, kinds=("Instruct",), weight_format=("bnb",),
                                                 bits=4),
    "ISTA-DASLab/Meta-Llama-3-8B-Instruct-AQLM-2Bit-1x16": dict(
        org="ISTA-DASLab", family="Llama", version="3", params="8B", params_billion=8.0, kinds=("Instruct",),
        weight_format=("AQLM",), bits=2, other=("1x16 (AQLM codebooks x bits per code)",)),
    "Qwen/Qwen3-8B-FP8": dict(org="Qwen", family="Qwen", version="3", params="8B", params_billion=8.0,
                              weight_format=("FP8",), bits=8),
    "mistralai/Mistral-7B-Instruct-v0.3": dict(org="mistralai", family="Mistral", version="v0.3", params="7B",
                                               params_billion=7.0, kinds=("Instruct",)),
    "Mistral-Nemo-Instruct-2407": dict(family="Mistral-Nemo", release="2407", kinds=("Instruct",)),
    "Mixtral-8x22B-v0.1": dict(family="Mixtral", version="v0.1", params="8x22B", experts=8,
                               expert_params_billion=22.0, moe=True),
    "deepseek-ai/DeepSeek-V3": dict(org="deepseek-ai", family="DeepSeek", version="V3"),
    "DeepSeek-V2-Lite-Chat": dict(family="DeepSeek", version="V2", variant=("Lite",), kinds=("Chat",)),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": dict(org="deepseek-ai", family="DeepSeek-R1", base="Llama",
                                                     params="8B", params_billion=8.0, kinds=("Distill",)),
    "THUDM/chatglm3-6b-32k": dict(org="THUDM", family="chatglm", version="3", params="6B", params_billion=6.0,
                                  context="32k"),
    "01-ai/Yi-1.5-34B-Chat-16K": dict(org="01-ai", family="Yi", version="1.5", params="34B", params_billion=34.0,
                                      kinds=("Chat",), context="16K"),
    "internlm/internlm2_5-7b-chat": dict(org="internlm", family="internlm", version="2.5", params="7B",
                                         params_billion=7.0, kinds=("Chat",)),
    "baichuan-inc/Baichuan2-13B-Chat": dict(org="baichuan-inc", family="Baichuan", version="2", params="13B",
                                            params_billion=13.0, kinds=("Chat",)),
    "llava-hf/llava-v1.6-mistral-7b-hf": dict(org="llava-hf", family="llava", version="v1.6", base="mistral",
                                              params="7B", params_billion=7.0, other=("hf",)),
    "NousResearch/Hermes-3-Llama-3.1-8B": dict(org="NousResearch", family="Hermes", version="3", base="Llama-3.1",
                                               params="8B", params_billion=8.0),
    "openai/gpt-oss-20b": dict(org="openai", family="gpt-oss", params="20B", params_billion=20.0),
    "codellama/CodeLlama-7b-Instruct-hf": dict(org="codellama", family="CodeLlama", params="7B",
                                               params_billion=7.0, kinds=("Coder", "Instruct"), other=("hf",)),
    "meta-llama/Llama-Guard-3-8B": dict(org="meta-llama", family="Llama", version="3", params="8B",
                                        params_billion=8.0, kinds=("Guard",)),
    "Qwen/Qwen2.5-Omni-7B": dict(org="Qwen", family="Qwen", version="2.5", params="7B", params_billion=7.0,
                                 modality=("Omni",)),
    "bigscience/bloom-560m": dict(org="bigscience", family="bloom", params="560M", params_billion=0.56),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reads_name(name):
    got = describe_name(name)
    assert got.raw == name
    expected = {**EMPTY, **CASES[name]}
    actual = {k: getattr(got, k) for k in expected}
    wrong = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
    assert not wrong, f"{name}: (got, expected) per field: {wrong}"


def test_models_reexports_describe_name():
    assert models.describe_name is describe_name
    assert models.ModelName is ModelName


def test_unknown_tags_are_kept_not_dropped():
    got = describe_name("Qwen3-8B-Instruct-Frobnicated-0x1")
    assert got.family == "Qwen" and got.kinds == ("Instruct",)
    assert got.unknown == ("Frobnicated", "0x1") and got.base is None
    assert "not read   Frobnicated, 0x1" in got.explain()


@pytest.mark.parametrize("bad", ["", "   ", None, 7])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="non-empty model name"):
        describe_name(bad)


def test_explain_distill_names_teacher_and_student():
    text = describe_name("DeepSeek-R1-Distill-Qwen-1.5B").explain()
    assert "teacher = DeepSeek-R1" in text and "student = a Qwen model of 1.5B" in text
    assert "知识蒸馏" in text


def test_explain_moe_does_not_claim_a_wrong_total():
    name = describe_name("Mixtral-8x7B-Instruct-v0.1")
    assert name.params_billion is None  # the name does not state the total (it is 46.7B, not 56B)
    text = name.explain()
    assert "8 experts" in text and "fewer than 8×7 = 56B" in text


def test_explain_covers_every_stated_field():
    text = describe_name("Qwen2-VL-2B-Instruct-GPTQ-Int8").explain()
    for part in ("Qwen", "version 2", "2 billion", "Instruct", "VL", "GPTQ", "Int8", "8 bits"):
        assert part in text, part
    assert "Long-Chat" in describe_name("Orion-14B-Long-Chat").explain()
    assert "RAG" in describe_name("Orion-14B-RAG-Chat").explain()
    assert "no Base/Chat/Instruct tag" in describe_name("Qwen2-Audio-7B").explain()


def test_weight_gib_units():
    name = describe_name("Qwen3-14B-Base")
    assert name.weight_gib() == pytest.approx(14e9 * 2 / 2**30)      # 16-bit: 2 bytes per parameter
    assert name.weight_gib(4) == pytest.approx(14e9 * 0.5 / 2**30)   # 4-bit: half a byte
    assert describe_name("Qwen2-VL-2B-Instruct-GPTQ-Int8").weight_gib() == pytest.approx(2e9 / 2**30)
    assert describe_name("Kimi-VL-A3B-Instruct").weight_gib() is None


def test_stated_lists_only_what_the_name_says():
    assert describe_name("Qwen/Qwen3-14B-Base").stated() == {
        "org": "Qwen", "family": "Qwen", "version": "3", "params": "14B", "params_billion": 14.0,
        "kinds": ("Base",)}
