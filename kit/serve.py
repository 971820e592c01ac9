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

Limits (ServeLimits; `python -m kit serve --help` names each): a request may not ask for more than
`max_tokens` new tokens (default: the model's context) and its prompt must fit the context (400
naming the limit); a body over `max_body_bytes` gets 413; generation stops when the client goes
away or after `request_timeout` seconds (the answer so far, finish_reason "length",
"kit_stopped": "timeout"); at most `max_queue` requests are admitted at once, the next gets 429
with Retry-After; SIGTERM stops every generation at the next token and the server exits within
seconds; `--api-key KEY` makes /v1/* require `Authorization: Bearer KEY` (what OpenAI clients send).

Left out: n > 1, logprobs, tool-call parsing in the response, batching concurrent requests (they
are answered one at a time, in turn), cancelling a vLLM generation mid-way (vLLM requests are
bounded by the max_tokens ceiling only).
"""
from __future__ import annotations

import asyncio
import collections
import hmac
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_MAX_TOKENS = 256


@dataclass
class ServeLimits:
    """What one request may cost the server. The CLI flags of `python -m kit serve` are these fields."""

    max_tokens: int | None = field(default=None, metadata={
        "help": "most new tokens one request may ask for (default: the model's context length)"})
    max_body_bytes: int = field(default=1_048_576, metadata={
        "help": "largest request body in bytes; larger ones get HTTP 413 (default 1 MiB)"})
    request_timeout: float = field(default=60.0, metadata={
        "help": "seconds one answer may generate for; then it stops and returns what it has"})
    max_queue: int = field(default=32, metadata={
        "help": "requests admitted at once (running + waiting their turn); the next gets HTTP 429"})
    api_key: str | None = field(default=None, metadata={
        "help": "if set, /v1/* requests need the header 'Authorization: Bearer <api_key>'"})

    def validate(self) -> "ServeLimits":
        checks = [("max_tokens", self.max_tokens is None or self.max_tokens >= 1, ">= 1 or None"),
                  ("max_body_bytes", self.max_body_bytes >= 1024, ">= 1024"),
                  ("request_timeout", self.request_timeout > 0, "> 0"),
                  ("max_queue", self.max_queue >= 1, ">= 1")]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"ServeLimits.{name}={getattr(self, name)!r}: must be {allowed}")
        return self


def context_length(model=None, tokenizer=None) -> int | None:
    """The model's context in tokens: config.max_position_embeddings, else the tokenizer's
    model_max_length when it is a real number (not transformers' 1e30 placeholder)."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return int(value) if isinstance(value, int) and 0 < value < 10_000_000 else None


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
    min_tokens: int = Field(0, ge=0, description="vLLM's extension: end-of-sequence is not allowed before this many tokens")
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
        self.lock = threading.RLock()  # reentrant: the server's worker holds it around stream()
        self.context_length = context_length(model, tokenizer)

    def _session(self, request: ChatCompletionRequest, system, max_new_tokens: int | None = None):
        from kit.chat import ChatSession

        params = request.sampling()
        if max_new_tokens is not None:
            params.max_new_tokens = max_new_tokens
        return ChatSession(self.model, self.tokenizer, template=self.template, system=system,
                           params=params, stop=request.stop, min_new_tokens=request.min_tokens)

    def prompt_tokens(self, request: ChatCompletionRequest) -> int:
        """How many tokens the request's prompt is (chat template applied)."""
        system, messages = request.split()
        return len(self._session(request, system).prompt_ids(messages))

    def stream(self, request: ChatCompletionRequest, usage: dict | None = None,
               should_stop=None, max_new_tokens: int | None = None) -> Iterator[str]:
        """Yield the answer's pieces; fill `usage` (prompt/completion tokens, hit_limit) at the end.
        `should_stop()` is checked after every token; `max_new_tokens` overrides the request's."""
        system, messages = request.split()
        session = self._session(request, system, max_new_tokens)
        with self.lock:
            yield from session.stream_messages(messages, should_stop=should_stop)
        if usage is not None:
            usage.update(session.last_usage)


class VLLMBackend:
    """Generation with vLLM (CUDA only). Streams the finished answer as one piece."""

    name = "vllm"

    def __init__(self, model_dir):
        from vllm import LLM

        self.llm = LLM(model=str(model_dir))
        self.tokenizer = self.llm.get_tokenizer()
        self.lock = threading.RLock()
        self.context_length = getattr(self.llm.llm_engine.model_config, "max_model_len", None)

    def prompt_tokens(self, request: ChatCompletionRequest) -> int:
        system, messages = request.split()
        convo = ([{"role": "system", "content": system}] if system else []) + messages
        return len(self.tokenizer.apply_chat_template(convo, add_generation_prompt=True, tokenize=True))

    def stream(self, request: ChatCompletionRequest, usage: dict | None = None,
               should_stop=None, max_new_tokens: int | None = None) -> Iterator[str]:
        from vllm import SamplingParams

        system, messages = request.split()
        params = request.sampling()
        if max_new_tokens is not None:
            params.max_new_tokens = max_new_tokens
        vparams = SamplingParams(temperature=params.temperature if params.do_sample else 0.0,
                                 top_p=params.top_p if params.do_sample else 1.0,
                                 max_tokens=params.max_new_tokens, min_tokens=request.min_tokens, stop=request.stop)
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


_END = object()  # end of a job's pieces


class _Gate:
    """Admission control shared by the requests of one app: a bounded count of admitted requests
    and the shutdown flag every generation checks."""

    def __init__(self, limits: ServeLimits):
        self.limits = limits
        self.admitted = 0
        self.shutdown = threading.Event()
        self.recent: collections.deque = collections.deque(maxlen=200)  # finished jobs' timings (bench/)
        self._lock = threading.Lock()
        self._turns: collections.deque = collections.deque()  # admitted jobs in arrival order
        self._turn_changed = threading.Condition()

    def wait_turn(self, job, give_up) -> bool:
        """Block until `job` is first in line (first come, first served); False if `give_up()` first."""
        with self._turn_changed:
            self._turns.append(job)
            while self._turns[0] is not job:
                if give_up():
                    self._turns.remove(job)
                    self._turn_changed.notify_all()
                    return False
                self._turn_changed.wait(0.05)
        return True

    def end_turn(self, job) -> None:
        with self._turn_changed:
            if job in self._turns:
                self._turns.remove(job)
            self._turn_changed.notify_all()

    def admit(self) -> bool:
        with self._lock:
            if self.admitted >= self.limits.max_queue:
                return False
            self.admitted += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.admitted -= 1


class _Job:
    """One admitted request: a daemon thread waits its turn on the backend's lock, generates, and
    puts the pieces on a queue; `cancel` (client gone), the gate's shutdown flag or the deadline
    (request_timeout seconds after its turn began) stop it at the next token."""

    def __init__(self, backend, request: ChatCompletionRequest, max_new_tokens: int | None, gate: _Gate):
        self.backend, self.request, self.max_new_tokens, self.gate = backend, request, max_new_tokens, gate
        self.pieces: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.usage: dict = {}
        self.stopped: str | None = None  # "timeout", "cancelled" or "shutdown" when a limit ended it
        self.error: BaseException | None = None
        self.deadline: float | None = None
        threading.Thread(target=self._run, daemon=True).start()

    def should_stop(self) -> bool:
        if self.cancel.is_set():
            self.stopped = self.stopped or "cancelled"
        elif self.gate.shutdown.is_set():
            self.stopped = self.stopped or "shutdown"
        elif self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped = self.stopped or "timeout"
        return self.stopped is not None

    def _run(self) -> None:
        arrived = time.monotonic()
        began = None
        try:  # wait for our turn (in arrival order), unless the client leaves meanwhile
            if not self.gate.wait_turn(self, lambda: self.cancel.is_set() or self.gate.shutdown.is_set()):
                self.should_stop()
                return
            try:
                with self.backend.lock:
                    began = time.monotonic()
                    self.deadline = began + self.gate.limits.request_timeout
                    for piece in self.backend.stream(self.request, self.usage, should_stop=self.should_stop,
                                                     max_new_tokens=self.max_new_tokens):
                        self.pieces.put(piece)
            finally:
                self.gate.end_turn(self)
        except BaseException as exc:  # re-raised in the handler
            self.error = exc
        finally:
            ended = time.monotonic()
            self.gate.recent.append({"stream": self.request.stream, "max_new_tokens": self.max_new_tokens,
                                     "waited_s": round((began or ended) - arrived, 3),
                                     "generated_s": round(ended - began, 3) if began else 0.0,
                                     "completion_tokens": self.usage.get("completion_tokens", 0),
                                     "stopped": self.stopped})
            self.pieces.put(_END)
            self.gate.leave()

    async def pieces_async(self, raw_request=None):
        """The pieces, without blocking the event loop; with `raw_request`, a client that disconnects
        cancels the job (checked every 0.25 s while waiting)."""
        checked = time.monotonic()
        while True:
            try:
                item = self.pieces.get_nowait()
            except queue.Empty:
                if raw_request is not None and time.monotonic() - checked > 0.25:
                    checked = time.monotonic()
                    if await raw_request.is_disconnected():
                        self.cancel.set()
                await asyncio.sleep(0.01)
                continue
            if item is _END:
                break
            yield item
        if self.error is not None:
            raise self.error

    @property
    def finish_reason(self) -> str:
        return "length" if self.usage.get("hit_limit") or self.stopped == "timeout" else "stop"


def _plain_response(scope, receive, send, status: int, message: str, param=None, headers=None, kind=None):
    response = _error(status, message, param, kind or "invalid_request_error")
    response.headers.update(headers or {})
    return response(scope, receive, send)


class _Guard:
    """ASGI middleware: the API key (401) and the request body size limit (413), checked before
    any handler reads the body (a body without Content-Length is counted as it arrives)."""

    def __init__(self, app, limits: ServeLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        key = self.limits.api_key
        if key and scope.get("path", "").startswith("/v1/"):
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
                return await _plain_response(scope, receive, send, 401,
                                             "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                                             kind="authentication_error",
                                             headers={"WWW-Authenticate": "Bearer"})
        limit = self.limits.max_body_bytes
        too_big = (f"the request body is larger than this server accepts ({limit} bytes; "
                   "see --max_body_bytes)")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._drain(receive, int(declared))
            return await _plain_response(scope, receive, send, 413, too_big, kind="request_too_large")
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # the app's HTTPException handler answers it (413, OpenAI's shape)
                    from fastapi import HTTPException

                    raise HTTPException(413, too_big)
            return message

        await self.app(scope, counting_receive, send)

    @staticmethod
    async def _drain(receive, declared: int) -> None:
        """Read (and drop) a refused body so the client sees the 413 instead of a broken pipe;
        bodies over 64 MiB are not read (the connection is answered and closed)."""
        if declared > 64 * 2**20:
            return
        more = True
        while more:
            message = await receive()
            more = message["type"] == "http.request" and message.get("more_body", False)


def _cancelling_stream(job: _Job, content):
    """A Server-Sent Events response that cancels `job` however it ends (finished, client gone, error)."""
    from fastapi.responses import StreamingResponse

    class CancellingStream(StreamingResponse):
        async def __call__(self, scope, receive, send):
            try:
                await super().__call__(scope, receive, send)
            finally:
                job.cancel.set()

    return CancellingStream(content, media_type="text/event-stream")


def create_app(backend, model_name: str = "kit-model", limits: ServeLimits | None = None):
    """A FastAPI app answering OpenAI-style chat requests with `backend`, within `limits`.
    `app.state.gate.shutdown.set()` stops every generation at its next token."""
    import anyio
    from fastapi import FastAPI, Request
    from starlette.exceptions import HTTPException
    from fastapi.exceptions import RequestValidationError
    limits = (limits or ServeLimits()).validate()
    gate = _Gate(limits)
    context = getattr(backend, "context_length", None)
    ceiling = limits.max_tokens or context
    app = FastAPI(title="kit chat API", version="1")
    app.state.gate = gate
    app.add_middleware(_Guard, limits=limits)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException):
        kind = {413: "request_too_large", 404: "not_found_error"}.get(exc.status_code, "invalid_request_error")
        return _error(exc.status_code, str(exc.detail), kind=kind)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError):
        message, param = _describe(exc.errors())
        return _error(400, message, param)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model_name, "backend": backend.name, "context_length": context,
                "max_tokens": ceiling, "admitted": gate.admitted, "max_queue": limits.max_queue}

    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "kit"}]}

    async def chat_completions(request: ChatCompletionRequest, raw: Request):
        asked_field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        asked = request.max_completion_tokens or request.max_tokens
        if asked is not None and ceiling is not None and asked > ceiling:
            source = "--max_tokens" if limits.max_tokens else "the model's context length"
            return _error(400, f"{asked_field}: {asked} is more than this server allows ({ceiling} tokens, "
                               f"{source})", asked_field)
        if gate.shutdown.is_set():
            return _error(503, "the server is shutting down", kind="server_shutting_down")
        if hasattr(backend, "prompt_tokens"):
            prompt_len = await anyio.to_thread.run_sync(backend.prompt_tokens, request)
        else:
            prompt_len = None
        max_new = None
        if context is not None and prompt_len is not None:
            if prompt_len >= context:
                return _error(400, f"messages: the prompt is {prompt_len} tokens, but the model's context is "
                                   f"{context} tokens (prompt and answer together); shorten the messages",
                              "messages")
            max_new = min(asked or DEFAULT_MAX_TOKENS, context - prompt_len)
        if not gate.admit():
            retry = str(max(1, int(limits.request_timeout)))
            return _with_headers(_error(429, f"the server is busy ({limits.max_queue} requests admitted, "
                                             f"--max_queue); retry after {retry} s", kind="rate_limit_error"),
                                 {"Retry-After": retry})
        job = _Job(backend, request, max_new, gate)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if request.stream:
            return _cancelling_stream(job, _sse(job, completion_id, created, model_name))
        try:
            text = "".join([piece async for piece in job.pieces_async(raw)]).strip()
        finally:
            job.cancel.set()  # the handler was cancelled or failed: stop generating
        usage = job.usage
        body = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": job.finish_reason}],
            "usage": {"prompt_tokens": usage.get("prompt_tokens", prompt_len or 0),
                      "completion_tokens": usage.get("completion_tokens", 0),
                      "total_tokens": usage.get("prompt_tokens", prompt_len or 0) + usage.get("completion_tokens", 0)},
        }
        if job.stopped:
            body["kit_stopped"] = job.stopped
        return body

    # FastAPI reads the parameter types; `Request` is imported here, so give it the classes themselves
    chat_completions.__annotations__.update(request=ChatCompletionRequest, raw=Request)
    app.post("/v1/chat/completions")(chat_completions)
    return app


def _with_headers(response, headers: dict):
    response.headers.update(headers)
    return response


async def _sse(job: _Job, completion_id, created, model_name):
    def chunk(delta: dict, finish=None) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if finish and job.stopped:
            body["kit_stopped"] = job.stopped
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    async for piece in job.pieces_async():
        yield chunk({"content": piece})
    yield chunk({}, job.finish_reason)
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------------------- server

class Server:
    """A uvicorn server running in a background thread (for notebooks and tests): `.url`, `.stop()`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self._socket = bind(host, port)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.time() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise RuntimeError(f"the API server did not start on {host}:{port} (port in use?)")
            time.sleep(0.05)
        self.host = host
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"

    def stop(self, timeout: float = 30) -> None:
        gate = getattr(getattr(self._server.config.app, "state", None), "gate", None)
        if gate is not None:  # stop every generation at its next token
            gate.shutdown.set()
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _check_host(host: str) -> None:
    if host not in LOOPBACK:
        raise ValueError(f"host={host!r}: the kit's API listens on loopback only ({sorted(LOOPBACK)}); "
                         "it has no authentication, so it must not be reachable from other machines")


def start(model_dir=None, port: int = 0, backend: str = "auto", model=None, tokenizer=None,
          model_name: str | None = None, limits: ServeLimits | None = None) -> Server:
    """Serve a model folder (or a loaded model + tokenizer) on 127.0.0.1 in the background.
    `port=0` picks a free port; read it from `.url`. Stop with `.stop()` (or use `with`).
    `limits`: ServeLimits (max_tokens ceiling, body size, per-request timeout, queue, api_key)."""
    if model is not None:
        engine = TransformersBackend(model=model, tokenizer=tokenizer)
    else:
        engine = make_backend(model_dir, backend)
    name = model_name or (Path(str(model_dir)).name if model_dir else "kit-model")
    return Server(create_app(engine, name, limits), port=port)


def bind(host: str, port: int):
    """A listening TCP socket on host:port (port 0: the OS picks a free one); uvicorn serves on it."""
    import socket

    _check_host(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror} (port in use? try --port 0)") from exc
    sock.listen(128)
    return sock


@dataclass
class ServeArgs:
    """`python -m kit serve` flags besides the limits (ServeLimits); parsed by kit.cli (HfArgumentParser)."""

    model: str = field(metadata={"help": "an exported model folder (or the built-in model's name)"})
    port: int = field(default=8000, metadata={"help": "TCP port on 127.0.0.1 (default 8000; 0 = any free port)"})
    host: str = field(default="127.0.0.1", metadata={"help": "loopback only: 127.0.0.1, localhost or ::1"})
    backend: str = field(default="auto", metadata={
        "help": "inference engine (LLaMA-Factory infer_backend); auto = vllm if installed with a GPU",
        "choices": ["auto", "transformers", "vllm"]})
    model_name: str | None = field(default=None, metadata={"help": "the id shown by /v1/models (default: the folder name)"})


def cli_main(argv: list[str] | None = None) -> int:
    """`python -m kit serve --model DIR [--port N] [--backend auto|transformers|vllm]` (blocks)."""
    import uvicorn

    from kit.cli import dataclass_parser, parse

    parser = dataclass_parser("python -m kit serve", "An OpenAI-style chat API on 127.0.0.1.", ServeArgs, ServeLimits)
    args, limits, *_ = parse(parser, argv)
    try:
        _check_host(args.host)
        limits.validate()
    except ValueError as exc:
        parser.error(str(exc))
    engine = make_backend(args.model, args.backend)
    app = create_app(engine, args.model_name or Path(args.model).name, limits)
    # SIGTERM/Ctrl-C: every generation stops at its next token, open requests get their answer so far,
    # and connections still open after 3 s are closed (the process then exits)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    original_exit = server.handle_exit

    def handle_exit(sig, frame):
        app.state.gate.shutdown.set()
        original_exit(sig, frame)

    server.handle_exit = handle_exit
    sock = bind(args.host, args.port)  # our own socket: the real port is known before uvicorn starts
    port = sock.getsockname()[1]
    print(f"kit serve: {engine.name} backend, model {args.model}, http://{args.host}:{port}/v1", flush=True)
    server.run(sockets=[sock])
    return 0
