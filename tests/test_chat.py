"""kit.chat: sessions, streaming, stop words, side-by-side answers with/without an adapter, a tool
round, and the chat widget (driven by setting .value, no browser)."""
import copy
import json

import pytest
import torch

from kit import models, templates
from kit.chat import ChatSession, SamplingParams, side_by_side, format_table, tool_round, parse_tool_calls


def greedy_reference(model, tokenizer, ids, max_new_tokens):
    """Plain model.generate on the same ids: what a streamed session must reproduce."""
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()


@pytest.fixture(scope="module")
def adapted(builtin):
    """A copy of the built-in model with a LoRA adapter whose B matrices are random (non-zero)."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = builtin
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]))
    torch.manual_seed(0)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.2)
    return peft_model.eval(), tokenizer


def test_sampling_params_validate_names_the_field():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=1.5).validate()
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=0).generate_kwargs()
    assert SamplingParams.greedy(7).generate_kwargs()["do_sample"] is False


def test_prompt_ids_are_the_training_encoding(tokenizer):
    session = ChatSession(None, tokenizer, template=models.BUILTIN_TEMPLATE, system="You are Kit.")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Who are you?"}]
    ids = session.prompt_ids(messages)
    train_ids, _ = templates.encode(models.BUILTIN_TEMPLATE, tokenizer, messages[:2], system="You are Kit.")
    assert ids[:len(train_ids)] == train_ids  # history encoded exactly as in training
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    assert session.stop_words == ["<|im_end|>"]


@pytest.mark.slow
def test_stream_matches_greedy_generate_and_keeps_history(builtin):
    model, tokenizer = builtin
    session = ChatSession(model, tokenizer, template=models.BUILTIN_TEMPLATE, params=SamplingParams.greedy(24))
    ids = session.prompt_ids([{"role": "user", "content": "What is the capital of France?"}])
    pieces = list(session.stream("What is the capital of France?"))
    assert len(pieces) > 3  # it really streams
    assert "".join(pieces).strip() == greedy_reference(model, tokenizer, ids, 24)
    assert [m["role"] for m in session.history] == ["user", "assistant"]
    second = session.ask("And of Italy?")
    assert len(session.history) == 4 and session.history[-1]["content"] == second
    session.clear()
    assert session.history == []


@pytest.mark.slow
def test_extra_stop_string_cuts_the_answer(builtin):
    model, tokenizer = builtin
    prompt = [{"role": "user", "content": "Tell me about the sea."}]
    full = ChatSession(model, tokenizer, template=models.BUILTIN_TEMPLATE, params=SamplingParams.greedy(30)).respond(prompt)
    words = full.split()
    assert len(words) > 6, full
    stop = " " + words[4]
    cut = ChatSession(model, tokenizer, template=models.BUILTIN_TEMPLATE, params=SamplingParams.greedy(30),
                      stop=[stop]).respond(prompt)
    assert cut == full[: full.index(stop)].strip()


@pytest.mark.slow
def test_side_by_side_adapter_on_and_off(builtin, adapted):
    base_model, tokenizer = builtin
    peft_model, _ = adapted
    greedy = SamplingParams.greedy(12)
    sessions = {
        "base": ChatSession(peft_model, tokenizer, models.BUILTIN_TEMPLATE, params=greedy, disable_adapter=True),
        "tuned": ChatSession(peft_model, tokenizer, models.BUILTIN_TEMPLATE, params=greedy),
    }
    rows = side_by_side(["Who are you?"], sessions)
    plain = ChatSession(base_model, tokenizer, models.BUILTIN_TEMPLATE, params=greedy).respond(
        [{"role": "user", "content": "Who are you?"}])
    assert rows[0]["base"] == plain            # adapter switched off = the base model
    assert rows[0]["tuned"] != rows[0]["base"]  # the (random) adapter changes the answer
    table = format_table(rows)
    assert table.splitlines()[0] == "| prompt | base | tuned |"
    with pytest.raises(ValueError, match="PeftModel"):
        ChatSession(base_model, tokenizer, disable_adapter=True)


def test_parse_tool_calls_uses_the_template():
    template = templates.get(models.BUILTIN_TEMPLATE)
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    text = template.slots_text(template.format_function.apply(content=json.dumps(call)))
    assert parse_tool_calls(text, template) == [call]
    assert parse_tool_calls("It is sunny.", template) == []


@pytest.mark.slow
def test_tool_round_feeds_the_observation_back(builtin):
    model, tokenizer = builtin
    template = templates.get(models.BUILTIN_TEMPLATE)
    tools = json.dumps([{"name": "get_weather", "description": "weather of a city",
                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    session = ChatSession(model, tokenizer, template, params=SamplingParams.greedy(16), tools=tools)
    call_text = template.slots_text(template.format_function.apply(
        content=json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})))
    seen = {}

    def get_weather(city):
        seen["city"] = city
        return {"city": city, "weather": "sunny", "celsius": 21}

    result = tool_round(session, "Weather in Paris?", {"get_weather": get_weather}, first_answer=call_text)
    assert seen == {"city": "Paris"}
    assert result.calls == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert json.loads(result.observations[0])["weather"] == "sunny"
    assert [m["role"] for m in session.history] == ["user", "function", "observation", "assistant"]
    assert result.answer == session.history[-1]["content"] and result.answer
    # the second generation saw the observation in the prompt
    prompt_text = tokenizer.decode(session.prompt_ids(session.history[:-1]))
    assert '"weather": "sunny"' in prompt_text
    with pytest.raises(KeyError, match="get_weather"):
        tool_round(session, "again", {}, first_answer=call_text)


@pytest.mark.slow
def test_chat_panel_send_and_clear(builtin):
    from kit.ui.chat import ChatPanel

    model, tokenizer = builtin
    panel = ChatPanel(ChatSession(model, tokenizer, models.BUILTIN_TEMPLATE))
    panel.params["do_sample"].value = False
    panel.params["max_new_tokens"].value = 8
    panel.input.value = "Hello there"
    answer = panel.send()
    assert answer and panel.session.params.max_new_tokens == 8 and panel.session.params.do_sample is False
    assert "Hello there" in panel.history.value and panel.input.value == ""
    panel.params["top_p"].value = 0.05
    panel.input.value = "   "
    assert panel.send() == "" and "type a message" in panel.status.value
    panel.clear()
    assert panel.session.history == [] and "no messages" in panel.history.value
