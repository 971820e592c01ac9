"""kit.serve: the OpenAI-style API answers on loopback (JSON and SSE streaming), rejects malformed
requests with a 400 naming the field, refuses non-loopback hosts; `python -m kit serve` works."""
import json
import signal

import httpx
import pytest

from kit import serve
from serving import start_cli_server

CHAT = "/v1/chat/completions"
QUESTION = {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 12, "temperature": 0}


def sse_events(response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.fixture(scope="module")
def server(builtin):
    model, tokenizer = builtin
    with serve.start(model=model, tokenizer=tokenizer, model_name="smollm2") as running:
        yield running


def test_request_validation_unit():
    request = serve.ChatCompletionRequest(**QUESTION)
    assert request.split() == ("You are a helpful assistant.", [QUESTION["messages"][1]])
    assert request.sampling().do_sample is False and request.sampling().max_new_tokens == 12
    sampled = serve.ChatCompletionRequest(messages=QUESTION["messages"], temperature=0.7, top_p=0.9).sampling()
    assert sampled.do_sample and sampled.temperature == 0.7 and sampled.top_p == 0.9
    with pytest.raises(ValueError, match="last message"):
        serve.ChatCompletionRequest(messages=[{"role": "assistant", "content": "hi"}])


def test_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        serve.Server(app=None, host="0.0.0.0")


@pytest.mark.slow
def test_chat_completion_json(server):
    assert server.url.startswith("http://127.0.0.1:")
    response = httpx.post(server.url + CHAT, json=QUESTION, timeout=120)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "smollm2"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"]
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 10 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert httpx.get(server.url + "/v1/models").json()["data"][0]["id"] == "smollm2"
    short = httpx.post(server.url + CHAT, json={**QUESTION, "max_tokens": 3}, timeout=120).json()
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 3


@pytest.mark.slow
def test_chat_completion_streaming_matches_json(server):
    plain = httpx.post(server.url + CHAT, json=QUESTION, timeout=120).json()["choices"][0]["message"]["content"]
    with httpx.stream("POST", server.url + CHAT, json={**QUESTION, "stream": True}, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert sum(1 for p in pieces if p) > 2  # several pieces, not one blob
    assert "".join(pieces).strip() == plain  # greedy: the same answer either way


@pytest.mark.slow
@pytest.mark.parametrize("body, field, words", [
    ({"messages": []}, "messages", "at least 1"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role", "robot"),
    ({"messages": [{"role": "user"}]}, "messages.0.content", "required"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}, "temperature", "less than or equal to 2"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, "messages", "last message"),
    ({"prompt": "hi"}, "messages", "required"),
])
def test_malformed_requests_get_400_naming_the_field(server, body, field, words):
    response = httpx.post(server.url + CHAT, json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == field
    assert field in error["message"] and words in error["message"]


@pytest.mark.slow
def test_invalid_json_gets_400(server):
    response = httpx.post(server.url + CHAT, content=b'{"messages": [', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.slow
def test_cli_serves_on_loopback_and_stops():
    """`python -m kit serve --model ... --port 0` in its own process: call it, then stop it."""
    process, url, seen = start_cli_server()
    try:
        assert url, "server did not start:\n" + "".join(seen[-20:])
        response = httpx.post(url + CHAT, json={**QUESTION, "max_tokens": 4}, timeout=120)
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    rest = process.stdout.read()
    # SIGTERM is a clean shutdown: uvicorn finishes the server (then re-raises the signal it captured,
    # so the exit is -SIGTERM or 0, never a crash's 1) and the port is free again
    assert process.returncode in (0, -signal.SIGTERM), "".join(seen[-20:]) + rest
    assert "Finished server process" in rest, rest
    serve.bind("127.0.0.1", int(url.rsplit(":", 1)[1])).close()


def test_cli_refuses_public_host(capsys):
    with pytest.raises(SystemExit):
        serve.cli_main(["--model", "x", "--host", "0.0.0.0"])
    assert "loopback" in capsys.readouterr().err
