"""kit.templates: encoding against the built-in tokenizer's own chat template, label masks, Jinja
round trips for every template, pinned published formats, previewer spans, tools and thinking."""
import copy
import json

import pytest

from kit import models
from kit import templates as T
from kit.templates.preview import chat_template_ids

SYSTEM = "You are a terse assistant."
TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "写一首关于春天的诗"},
    {"role": "assistant", "content": "春风拂面 🌸"},
]
TOOLS = [{"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "city name"}},
                         "required": ["city"]}}]
TOOL_CONV = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "function", "content": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
    {"role": "observation", "content": '{"temp": 21}'},
    {"role": "assistant", "content": "It is 21°C."},
]


def trained_text(tokenizer, labels):
    return tokenizer.decode([t for t in labels if t != T.IGNORE_INDEX], skip_special_tokens=False)


# ------------------------------------------------------------------- the built-in model's format
def test_builtin_template_name():
    assert models.BUILTIN_TEMPLATE in T.names()
    assert T.get(models.BUILTIN_TEMPLATE).name == "smollm2"


@pytest.mark.parametrize("n_turns", [1, 3])
@pytest.mark.parametrize("system", [None, SYSTEM])
def test_encode_matches_apply_chat_template(tokenizer, n_turns, system):
    messages = TURNS[: 2 * n_turns]
    hf = ([{"role": "system", "content": system}] if system else []) + messages
    ids, labels = T.encode(models.BUILTIN_TEMPLATE, tokenizer, messages, system=system)
    assert ids == chat_template_ids(tokenizer, hf)
    assert len(labels) == len(ids)
    # the same with the system prompt given as a leading message
    assert T.encode(models.BUILTIN_TEMPLATE, tokenizer, hf)[0] == ids
    # the generation prompt for inference
    prompt = T.encode_prompt(models.BUILTIN_TEMPLATE, tokenizer, hf[:-1])
    assert prompt == chat_template_ids(tokenizer, hf[:-1], add_generation_prompt=True)


def test_labels_cover_only_assistant_turns(tokenizer):
    ids, labels = T.encode("smollm2", tokenizer, TURNS, system=SYSTEM)
    assert trained_text(tokenizer, labels) == "Hello!<|im_end|>\n4.<|im_end|>\n春风拂面 🌸<|im_end|>\n"
    # each trained token is exactly the input token at that position
    assert all(lab == tok for lab, tok in zip(labels, ids) if lab != T.IGNORE_INDEX)
    # the trained positions are the assistant spans of the previewer
    spans = T.preview("smollm2", tokenizer, TURNS, system=SYSTEM)
    assert {s.role for s in spans if s.trained} == {"assistant"}
    assert all(s.trained for s in spans if s.role == "assistant")


def test_train_on_prompt_and_mask_history(tokenizer):
    ids, labels = T.encode("smollm2", tokenizer, TURNS, train_on_prompt=True)
    assert labels == ids
    ids, labels = T.encode("smollm2", tokenizer, TURNS, mask_history=True)
    assert trained_text(tokenizer, labels) == "春风拂面 🌸<|im_end|>\n"
    assert ids == T.encode("smollm2", tokenizer, TURNS)[0]  # same ids, fewer labels


def test_truncation_keeps_the_answer(tokenizer):
    long_q = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "Short answer."}]
    ids, labels = T.encode("smollm2", tokenizer, long_q, cutoff_len=64)
    assert len(ids) == len(labels) == 64
    assert trained_text(tokenizer, labels) == "Short answer.<|im_end|>\n"
    # mask_history fits the last turn first: it survives a tight budget, earlier turns are dropped
    ids, labels = T.encode("smollm2", tokenizer, TURNS, cutoff_len=30, mask_history=True)
    assert len(ids) <= 30 and trained_text(tokenizer, labels).startswith("春风")
    assert T.fit_lengths(100, 10, 64) == (54, 10)
    assert T.fit_lengths(10, 100, 64) == (10, 54)
    assert T.fit_lengths(100, 100, 64) == (32, 32)
    with pytest.raises(ValueError, match="cutoff_len"):
        T.encode("smollm2", tokenizer, TURNS, cutoff_len=0)


def test_encode_pair_shares_the_prompt(tokenizer):
    prompt = TURNS[:3]
    pair = T.encode_pair("smollm2", tokenizer, prompt, "4.", {"role": "assistant", "content": "Five, surely."})
    full, labels = T.encode("smollm2", tokenizer, prompt + [{"role": "assistant", "content": "4."}], mask_history=True)
    assert pair["chosen_input_ids"] == full and pair["chosen_labels"] == labels
    assert pair["rejected_input_ids"][: len(pair["prompt_ids"])] == pair["prompt_ids"]
    assert tokenizer.decode(pair["rejected_ids"]) == "Five, surely.<|im_end|>\n"
    small = T.encode_pair("smollm2", tokenizer, prompt, "4.", "Five, surely.", cutoff_len=20)
    assert len(small["chosen_input_ids"]) <= 20 and len(small["rejected_input_ids"]) <= 20


def test_pretraining_modes(tokenizer):
    ids, labels = T.encode_pretrain(tokenizer, "Plain text to continue.", cutoff_len=64)
    assert labels == ids and ids[-1] == tokenizer.eos_token_id
    ids, labels = T.encode("empty", tokenizer, [{"role": "assistant", "content": "Plain text."}])
    assert labels == ids and tokenizer.decode(ids) == "Plain text."


# -------------------------------------------------------------------------- every template
@pytest.mark.parametrize("name", T.names())
def test_to_jinja_renders_like_render(tokenizer, name):
    template = T.get(name)
    conv = [{"role": "system", "content": 'Say "hi" \\ be kind.'}] + TURNS
    jinja = template.to_jinja()
    assert tokenizer.apply_chat_template(conv, chat_template=jinja, tokenize=False) == template.render(conv)
    prompt = conv[:-1]
    assert tokenizer.apply_chat_template(prompt, chat_template=jinja, tokenize=False, add_generation_prompt=True) \
        == template.render(prompt, add_generation_prompt=True)
    # without a system message the default system prompt (if any) appears in both
    assert tokenizer.apply_chat_template(TURNS, chat_template=jinja, tokenize=False) == template.render(TURNS)


PINNED_CONV = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Q1"},
               {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
               {"role": "assistant", "content": "A2"}]
PINNED = {
    "qwen": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
              "A1<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nA2<|eot_id|>",
    "mistral": "<s>[INST] SYS\n\nQ1[/INST] A1</s>[INST] Q2[/INST] A2</s>",
    "gemma": "<bos><start_of_turn>user\nSYS\n\nQ1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
             "<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\nA2<end_of_turn>\n",
    "phi4": "<|im_start|>system<|im_sep|>SYS<|im_end|><|im_start|>user<|im_sep|>Q1<|im_end|>"
            "<|im_start|>assistant<|im_sep|>A1<|im_end|><|im_start|>user<|im_sep|>Q2<|im_end|>"
            "<|im_start|>assistant<|im_sep|>A2<|im_end|>",
    "glm4": "[gMASK]<sop><|system|>\nSYS<|user|>\nQ1<|assistant|>\nA1<|user|>\nQ2<|assistant|>\nA2",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_published_formats_are_pinned(name):
    assert T.get(name).render(PINNED_CONV) == PINNED[name]


def test_default_systems_and_stop_words():
    assert T.get("qwen").render(PINNED_CONV[1:3]).startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n")
    assert T.get("qwen3").default_system == ""
    assert T.get("qwen").stop_words == ("<|im_end|>",) and T.get("qwen").replace_eos
    assert T.get("llama3").stop_words == ("<|eot_id|>", "<|eom_id|>")
    assert T.get("glm4").efficient_eos and not T.get("glm4").replace_eos
    assert T.stop_words("gemma") == ["<end_of_turn>"]


# -------------------------------------------------------------------------------- registry
def test_templates_are_derived_not_copied():
    qwen, qwen3, chatml = T.get("qwen"), T.get("qwen3"), T.get("chatml")
    assert qwen.base == "chatml" and qwen3.base == "qwen" and T.get("smollm2").base == "smollm"
    assert qwen.format_user == chatml.format_user and qwen3.format_observation == qwen.format_observation
    assert T.get("qwen3_nothink").reasoning is False and qwen3.reasoning is True


def test_register_and_get_errors():
    t = T.register_template("kit_test_tmp", base="qwen", default_system="Be short.", replace=True)
    try:
        assert T.get("kit_test_tmp").render([{"role": "user", "content": "x"}]).startswith(
            "<|im_start|>system\nBe short.")
        with pytest.raises(ValueError, match="already registered"):
            T.register_template("kit_test_tmp", base="qwen")
        with pytest.raises(ValueError, match="unknown setting"):
            T.register_template("kit_test_bad", stop_word=["x"])
        with pytest.raises(ValueError, match="base template 'nope'"):
            T.register_template("kit_test_bad", base="nope")
        assert t.name == "kit_test_tmp"
    finally:
        T.TEMPLATES.pop("kit_test_tmp")
    with pytest.raises(ValueError, match="unknown template 'qwen9'.*Known templates"):
        T.get("qwen9")
    assert T.get("qwen3", enable_thinking=False).enable_thinking is False
    assert T.get("qwen3").enable_thinking is True  # get(..., change) returns a copy


def test_bad_messages_name_the_position(tokenizer):
    with pytest.raises(ValueError, match=r"messages\[1\]: role 'user'"):
        T.encode("qwen", tokenizer, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                      {"role": "assistant", "content": "c"}])
    with pytest.raises(ValueError, match=r"messages\[2\]: unknown role 'system'"):
        T.get("qwen").render(TURNS[:2] + [{"role": "system", "content": "x"}])
    with pytest.raises(ValueError, match="must end with an assistant"):
        T.encode("qwen", tokenizer, TURNS[:1])
    with pytest.raises(ValueError, match="must end with a user"):
        T.encode_prompt("qwen", tokenizer, TURNS[:2])
    with pytest.raises(ValueError, match="efficient_eos"):
        T.encode("glm4", tokenizer, TURNS[:2], train_on_prompt=True)


@pytest.mark.parametrize("name,expected", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2"), ("Qwen/Qwen2.5-7B-Instruct", "qwen"),
    ("Qwen/Qwen3-8B", "qwen3"), ("Qwen/Qwen3-4B-Instruct-2507", "qwen3_nothink"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"), ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
    ("google/gemma-3-4b-it", "gemma3"), ("microsoft/phi-4", "phi4"), ("THUDM/glm-4-9b-chat", "glm4"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseekr1"), ("some/unknown-model", "default"),
])
def test_infer(name, expected):
    assert T.infer(name) == expected


def test_infer_from_tokenizer_and_stop_ids(tokenizer):
    assert T.infer(tokenizer) == "smollm2"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in T.stop_token_ids("smollm2", tokenizer)
    # chatml stops on <|im_end|> (already this tokenizer's EOS) and <|im_start|>
    assert T.stop_token_ids("chatml", tokenizer) == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_start|>")]
    assert T.stop_token_ids("llama3", tokenizer) == [tokenizer.eos_token_id]  # <|eot_id|> is not one token here


def test_fix_tokenizer_replaces_eos(tokenizer):
    tok = copy.deepcopy(tokenizer)
    added = T.fix_tokenizer("llama3", tok)
    assert tok.eos_token == "<|eot_id|>" and added >= 1
    assert len(tok.encode("<|eot_id|>", add_special_tokens=False)) == 1
    assert tokenizer.eos_token == "<|im_end|>"  # the shared tokenizer is untouched


# ------------------------------------------------------------------------ previewer / mismatch
@pytest.mark.parametrize("name", ["smollm2", "qwen3", "llama3", "glm4", "default"])
def test_preview_spans_concatenate_to_decoded_text(tokenizer, name):
    enc = T.encode_tokens(name, tokenizer, TURNS, system=SYSTEM)
    spans = T.preview(name, tokenizer, TURNS, system=SYSTEM)
    assert "".join(s.text for s in spans) == tokenizer.decode(enc.input_ids, skip_special_tokens=False)
    assert [i for s in spans for i in s.token_ids] == enc.input_ids
    assert any(s.special for s in spans) and any(s.trained for s in spans) and any(not s.trained for s in spans)


def test_mismatch_detector(tokenizer):
    assert T.find_mismatch("smollm2", tokenizer, TURNS[:2]).matches
    # LLaMA-Factory's smollm2 default system ends with "." - the model's own template has none
    lf_style = T.get("smollm2").replace(default_system=T.get("smollm2").default_system + ".")
    found = T.find_mismatch(lf_style, tokenizer, TURNS[:2])
    assert not found.matches and found.ours_token == "." and found.context.endswith("Hugging Face")
    wrong = T.find_mismatch("llama3", tokenizer, TURNS[:2], system=SYSTEM)
    # SmolLM's BOS is <|im_start|>, so token 0 agrees; the llama3 header text differs right after
    assert wrong.index == 1 and wrong.theirs_token == "system" and "first difference at token 1" in wrong.summary()
    # a conversation ending with a user turn is compared as a generation prompt
    assert T.find_mismatch("smollm2", tokenizer, TURNS[:3]).matches
    assert T.find_mismatch("chatml", tokenizer, TURNS[:1]).index == 1  # no default system prompt


# ------------------------------------------------------------------------------- tools / thinking
def test_qwen_tool_calling(tokenizer):
    qwen = T.get("qwen")
    text = qwen.render(TOOL_CONV, tools=json.dumps(TOOLS))
    assert "# Tools\n\nYou may call one or more functions" in text
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>' in text
    assert "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>" in text
    hf = [TOOL_CONV[0], {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": '{"temp": 21}'}, TOOL_CONV[3]]
    assert tokenizer.apply_chat_template(hf, tools=TOOLS, chat_template=qwen.to_jinja(), tokenize=False) == text
    ids, labels = T.encode(qwen, tokenizer, TOOL_CONV, tools=TOOLS)
    assert trained_text(tokenizer, labels).startswith("<tool_call>")  # the call is trained
    assert T.parse_tool_calls("qwen", "Sure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>") \
        == [T.ToolCall("f", {"x": 1})]
    assert T.parse_tool_calls("qwen", "no call here") == "no call here"


@pytest.mark.parametrize("name", ["default", "qwen", "llama3", "mistral", "glm4"])
def test_tool_formats_round_trip(name):
    from kit.templates.tools import get_tool_format

    fmt = get_tool_format(name)
    calls = [T.ToolCall("get_weather", {"city": "Paris", "days": 2})]
    assert fmt.parse(fmt.format_calls(calls)) == calls
    assert "get_weather" in fmt.describe(TOOLS)
    with pytest.raises(ValueError, match="not JSON"):
        T.get("qwen").render([{"role": "user", "content": "x"}, {"role": "function", "content": "get_weather(Paris)"}])


def test_thinking_templates(tokenizer):
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nyo"}]
    plain = [conv[0], {"role": "assistant", "content": "yo"}]
    _, labels = T.encode("qwen3", tokenizer, conv)
    assert trained_text(tokenizer, labels) == "<think>\nhm\n</think>\n\nyo<|im_end|>\n"  # thoughts trained
    _, labels = T.encode("qwen3", tokenizer, plain)
    assert trained_text(tokenizer, labels) == "<think>\n\n</think>\n\nyo<|im_end|>\n"  # empty thought trained
    off = T.get("qwen3", enable_thinking=False)
    ids, labels = T.encode(off, tokenizer, conv)
    assert trained_text(tokenizer, labels) == "yo<|im_end|>\n"  # thought removed, empty one masked
    assert tokenizer.decode(ids).endswith("assistant\n<think>\n\n</think>\n\nyo<|im_end|>\n")
    assert tokenizer.decode(T.encode_prompt(off, tokenizer, conv[:1])).endswith("assistant\n<think>\n\n</think>\n\n")
    assert tokenizer.decode(T.encode_prompt("qwen3", tokenizer, conv[:1])).endswith("assistant\n")
    jinja = T.get("qwen3").to_jinja()
    assert tokenizer.apply_chat_template(conv, chat_template=jinja, tokenize=False, enable_thinking=False) \
        == off.render(conv)
    assert "<think>" not in T.get("qwen3_nothink").render(plain)


def test_efficient_eos_appends_one_eos(tokenizer):
    ids, labels = T.encode("glm4", tokenizer, TURNS[:4])
    assert ids[-1] == labels[-1] == tokenizer.eos_token_id
    text = T.get("glm4").render(TURNS[:4])
    assert tokenizer.decode(ids[:-1]) == text
