"""Load test of `kit.serve` on loopback: latency of well-behaved clients with one abusive client.

    python bench/serve_load.py                      # 1, 4 and 16 clients, the built-in model, CPU
    python bench/serve_load.py --clients 1 4 --requests 1 --out /tmp/serve_load.json   # smaller

At each level N, N well-behaved clients each send `--requests` short chat requests (max_tokens 8,
greedy) one after another, while one abusive client, started first, sends a request asking for the
whole context (max_tokens = the server's ceiling) and a streaming request it abandons after the
first piece. The server runs with `--request_timeout` seconds per request, so the abusive request is
cut there. Reported per level: p50 / p95 / max latency of the well-behaved requests (seconds),
errors (any non-200), how long the abusive request held the server, and the target check:
a well-behaved request may wait for the abusive request's limit once, plus its share of the
well-behaved work ahead of it (requests are answered one at a time):
    max latency <= 2 * (request_timeout + alone) + N * alone + 2 s of slack,
where `alone` is one well-behaved request's latency on an idle server (it also covers the token
in progress when a limit is hit) and the 2 counts the abusive client's two requests.
The server's own per-request timings (wait for the turn, generation time, stop reason) are saved
with each level.
Bounded: loopback only, a fixed number of requests, every client with a 300 s timeout.
Writes a JSON result file (machine, versions, settings, per-level figures) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from pathlib import Path

import httpx

CHAT = "/v1/chat/completions"
POLITE = {"messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 8, "temperature": 0}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def abusive_client(url: str, ceiling: int, out: dict) -> None:
    started = time.monotonic()
    try:
        with httpx.stream("POST", url + CHAT, json={**POLITE, "max_tokens": ceiling, "stream": True}, timeout=300) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # walk away after the first piece
        response = httpx.post(url + CHAT, json={**POLITE, "max_tokens": ceiling, "temperature": 1.0}, timeout=300)
        body = response.json()
        out.update(status=response.status_code, stopped=body.get("kit_stopped"),
                   completion_tokens=body.get("usage", {}).get("completion_tokens"))
    except httpx.HTTPError as exc:
        out.update(status=None, error=repr(exc))
    out["seconds"] = round(time.monotonic() - started, 3)


def polite_client(url: str, requests: int, latencies: list, errors: list) -> None:
    for _ in range(requests):
        started = time.monotonic()
        try:
            response = httpx.post(url + CHAT, json=POLITE, timeout=300)
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:120]}")
                continue
        except httpx.HTTPError as exc:
            errors.append(repr(exc))
            continue
        latencies.append(time.monotonic() - started)


def run_level(url: str, clients: int, requests: int, ceiling: int, timeout: float, alone: float, gate) -> dict:
    gate.recent.clear()
    abusive: dict = {}
    bully = threading.Thread(target=abusive_client, args=(url, ceiling, abusive))
    bully.start()
    time.sleep(0.5)  # the abusive requests go first
    latencies: list[float] = []
    errors: list[str] = []
    threads = [threading.Thread(target=polite_client, args=(url, requests, latencies, errors)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads + [bully]:
        thread.join()
    # two abusive requests (the abandoned stream, the long one), each cut at its limit after the
    # token in progress (one `alone` covers it), then the well-behaved work ahead
    bound = 2 * (timeout + alone) + clients * alone + 2.0
    worst = max(latencies) if latencies else None
    return {"clients": clients, "requests": clients * requests, "ok": len(latencies), "errors": len(errors),
            "error_samples": errors[:3],
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
            "max_s": round(worst, 3) if worst is not None else None,
            "bound_s": round(bound, 3), "within_target": worst is not None and worst <= bound and not errors,
            "abusive": abusive, "server_jobs": list(gate.recent)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=2, help="requests per well-behaved client")
    parser.add_argument("--request_timeout", type=float, default=5.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "serve_load.json"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args(argv)

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)

    from kit import models, serve

    model, tokenizer = models.load(args.model)
    limits = serve.ServeLimits(request_timeout=args.request_timeout, max_queue=max(args.clients) + 4)
    levels = []
    with serve.start(model=model, tokenizer=tokenizer, limits=limits) as server:
        ceiling = httpx.get(server.url + "/health").json()["max_tokens"]
        started = time.monotonic()
        assert httpx.post(server.url + CHAT, json=POLITE, timeout=300).status_code == 200
        alone = time.monotonic() - started
        for clients in args.clients:
            gate = server._server.config.app.state.gate
            levels.append(run_level(server.url, clients, args.requests, ceiling, args.request_timeout, alone, gate))
            print(json.dumps(levels[-1]), flush=True)
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": __import__("os").cpu_count(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "settings": {"model": args.model, "device": str(model.device), "request_timeout_s": args.request_timeout,
                     "torch_threads": torch.get_num_threads(), "load_average_1min": __import__("os").getloadavg()[0],
                     "requests_per_client": args.requests, "max_tokens_ceiling": ceiling,
                     "one_request_alone_s": round(alone, 3)},
        "levels": levels,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{'clients':>7} {'ok':>4} {'errors':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'bound s':>8} "
          f"{'abusive s':>9} target")
    for level in levels:
        print(f"{level['clients']:>7} {level['ok']:>4} {level['errors']:>6} {level['p50_s']!s:>7} {level['p95_s']!s:>7} "
              f"{level['max_s']!s:>7} {level['bound_s']:>8} {level['abusive'].get('seconds')!s:>9} "
              f"{'met' if level['within_target'] else 'MISSED'}")
    print(f"wrote {args.out}")
    return 0 if all(level["within_target"] for level in levels) else 1


if __name__ == "__main__":
    raise SystemExit(main())
