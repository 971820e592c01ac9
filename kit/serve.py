"""An OpenAI-compatible chat API for an exported model, on this machine only (127.0.0.1).

    python -m kit serve --model work/11_export/merged --port 8000
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"messages": [{"role": "user", "content": "Who are you?"}]}'

Endpoints: POST /v1/chat/completions (non-streaming JSON, or Server-Sent Events with "stream": true,
ending in `data: [DONE]`, as OpenAI's API does), GET /v1/models, GET /health. The prompt is built
with the model folder's own chat template (kit.export writes the training template there).

Backends: Transformers (always), vLLM when it is installed and a CUDA GPU is present (LLaMA-Factory's
`infer_backend: vllm`). A malformed request gets HTTP 400 with OpenAI's error shape, naming the field:
{"error": {"message": "messages.0.role: ...", "type": "invalid_request_error", "param": "messages.0.role"}}.
The `model` field of a request is echoed, not checked (one model is served).

Left out: authentication (the server only listens on loopback), n > 1, logprobs, tool-call
parsing in the response, batching concurrent requests (they are answered one at a time).
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_MAX_TOKENS = 256


# ------------------------------------------------------------------------------------- requests

class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: Union[str, list[TextPart]]

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat completion request that the kit honours; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    stop: Union[str, list[str], None] = None
    n: int = Field(1, ge=1, le=1, description="only one choice is generated")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages):
        if messages and messages[-1].role not in ("user", "tool"):
            raise ValueError(f"the last message must have role 'user' or 'tool', not '{messages[-1].role}'")
        return messages

    def sampling(self):
        from kit.chat import SamplingParams

        limit = self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS
        if self.temperature == 0.0:  # OpenAI's temperature 0 = greedy
            return SamplingParams.greedy(limit)
        return SamplingParams(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=0,
                              max_new_tokens=limit)

    def split(self) -> tuple[str | None, list[dict]]:
        """(system prompt, the other messages as {role, content})."""
        system = None
        rest = []
        for m in self.messages:
            if m.role == "system" and not rest and system is None:
                system = m.text
            elif m.role == "system":
                rest.append({"role": "system", "content": m.text})
            else:
                rest.append({"role": m.role, "content": m.text})
        return system, rest


# ------------------------------------------------------------------------------------- backends

class TransformersBackend:
    """Generation with transformers through kit.chat (a lock makes requests take turns)."""

    name = "transformers"

    def __init__(self, model_dir=None, model=None, tokenizer=None, template=None):
        if model is None:
            from kit import models

            model, tokenizer = models.load(str(model_dir))
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.lock = threading.Lock()

    def _session(self, request: ChatCompletionRequest, system):
        from kit.chat import ChatSession

        return ChatSession(self.model, self.tokenizer, template=self.template, system=system,
                           params=request.sampling(), stop=request.stop)

    def stream(self, request: ChatCompletionRequest, usage: dict | None = None) -> Iterator[str]:
        """Yield the answer's pieces; fill `usage` (prompt/completion tokens, hit_limit) at the end."""
        system, messages = request.split()
        session = self._session(request, system)
        with self.lock:
            yield from session.stream_messages(messages)
        if usage is not None:
            usage.update(session.last_usage)


class VLLMBackend:
    """Generation with vLLM (CUDA only). Streams the finished answer as one piece."""

    name = "vllm"

    def __init__(self, model_dir):
        from vllm import LLM

        self.llm = LLM(model=str(model_dir))
        self.tokenizer = self.llm.get_tokenizer()
        self.lock = threading.Lock()

    def stream(self, request: ChatCompletionRequest, usage: dict | None = None) -> Iterator[str]:
        from vllm import SamplingParams

        system, messages = request.split()
        params = request.sampling()
        vparams = SamplingParams(temperature=params.temperature if params.do_sample else 0.0,
                                 top_p=params.top_p if params.do_sample else 1.0,
                                 max_tokens=params.max_new_tokens, stop=request.stop)
        convo = ([{"role": "system", "content": system}] if system else []) + messages
        with self.lock:
            out = self.llm.chat(convo, vparams, use_tqdm=False)
        if usage is not None:
            answer = out[0].outputs[0]
            usage.update(prompt_tokens=len(out[0].prompt_token_ids), completion_tokens=len(answer.token_ids),
                         hit_limit=answer.finish_reason == "length")
        yield out[0].outputs[0].text


def vllm_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def make_backend(model_dir, backend: str = "auto"):
    """`auto` picks vLLM when it is installed and a GPU is present, else Transformers."""
    if backend not in ("auto", "transformers", "vllm"):
        raise ValueError(f"backend={backend!r}: choose auto, transformers or vllm")
    if backend == "vllm" and not vllm_available():
        raise RuntimeError("backend='vllm' needs the vllm package and a CUDA GPU; use backend='transformers'")
    if backend == "vllm" or (backend == "auto" and vllm_available()):
        return VLLMBackend(model_dir)
    return TransformersBackend(model_dir)


# ------------------------------------------------------------------------------------------ app

def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status,
                        content={"error": {"message": message, "type": kind, "param": param, "code": None}})


def _describe(errors: list[dict]) -> tuple[str, str | None]:
    """Pydantic's error list -> one readable message naming each field, and the first field."""
    parts, first = [], None
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        if err.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({err.get('ctx', {}).get('error', err.get('msg'))})")
            continue
        where = ".".join(loc) or "body"
        first = first or where
        shown = err.get("type") not in ("missing", "value_error") and "input" in err
        got = f" (got {json.dumps(err['input'], default=str)[:80]})" if shown else ""
        parts.append(f"{where}: {err.get('msg')}{got}")
    return "; ".join(parts), first


def create_app(backend, model_name: str = "kit-model"):
    """A FastAPI app answering OpenAI-style chat requests with `backend`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="kit chat API", version="1")

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError):
        message, param = _describe(exc.errors())
        return _error(400, message, param)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model_name, "backend": backend.name}

    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "kit"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest):
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if request.stream:
            return StreamingResponse(_sse(backend, request, completion_id, created, model_name),
                                     media_type="text/event-stream")
        usage: dict = {}
        text = "".join(backend.stream(request, usage)).strip()
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "length" if usage["hit_limit"] else "stop"}],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                      "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
        }

    return app


def _sse(backend, request, completion_id, created, model_name) -> Iterator[str]:
    def chunk(delta: dict, finish=None) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    usage: dict = {}
    for piece in backend.stream(request, usage):
        yield chunk({"content": piece})
    yield chunk({}, "length" if usage.get("hit_limit") else "stop")
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------------------- server

class Server:
    """A uvicorn server running in a background thread (for notebooks and tests): `.url`, `.stop()`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        _check_host(host)
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.time() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise RuntimeError(f"the API server did not start on {host}:{port} (port in use?)")
            time.sleep(0.05)
        self.host = host
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{host}:{self.port}"

    def stop(self, timeout: float = 30) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _check_host(host: str) -> None:
    if host not in LOOPBACK:
        raise ValueError(f"host={host!r}: the kit's API listens on loopback only ({sorted(LOOPBACK)}); "
                         "it has no authentication, so it must not be reachable from other machines")


def start(model_dir=None, port: int = 0, backend: str = "auto", model=None, tokenizer=None,
          model_name: str | None = None) -> Server:
    """Serve a model folder (or a loaded model + tokenizer) on 127.0.0.1 in the background.
    `port=0` picks a free port; read it from `.url`. Stop with `.stop()` (or use `with`)."""
    if model is not None:
        engine = TransformersBackend(model=model, tokenizer=tokenizer)
    else:
        engine = make_backend(model_dir, backend)
    name = model_name or (Path(str(model_dir)).name if model_dir else "kit-model")
    return Server(create_app(engine, name), port=port)


def cli_main(argv: list[str] | None = None) -> int:
    """`python -m kit serve --model DIR [--port N] [--backend auto|transformers|vllm]` (blocks)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m kit serve", description="An OpenAI-style chat API on 127.0.0.1.")
    parser.add_argument("--model", required=True, help="an exported model folder (or the built-in model's name)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default 8000; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback only: 127.0.0.1, localhost or ::1")
    parser.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"],
                        help="inference engine (LLaMA-Factory infer_backend); auto = vllm if installed with a GPU")
    parser.add_argument("--model_name", default=None, help="the id shown by /v1/models (default: the folder name)")
    args = parser.parse_args(argv)
    try:
        _check_host(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    engine = make_backend(args.model, args.backend)
    app = create_app(engine, args.model_name or Path(args.model).name)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info")
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets=None):  # print the real address once bound (port 0 picks a free one)
        await original_startup(sockets=sockets)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            print(f"kit serve: {engine.name} backend, model {args.model}, http://{args.host}:{port}/v1", flush=True)

    server.startup = startup
    server.run()
    return 0
