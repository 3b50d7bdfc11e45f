"""Abuse benchmark: ``clinprompt serve`` under hostile requests, each bounded, against its limits.

    python bench/serve_abuse.py [--backbone tiny-llama] [--json FILE]
    python bench/serve_abuse.py --soak MINUTES [--soak-clients 4] [--json FILE]

1. Build a bank (NER, QA with options, NLI; random prompts) for ``--backbone`` in a temporary
   directory: ``tiny-llama`` (default: seconds on a CPU) or the built-in ``smollm2-135m``.
2. Start ``clinprompt serve`` in a subprocess on 127.0.0.1 with an API key and the documented
   default limits; sample its memory from ``/proc/<pid>/status`` (VmRSS every 20 ms, and VmHWM
   reset through ``/proc/<pid>/clear_refs`` before each case, so each case has its own peak).
3. Measure the normal latency of a valid request (median of 10, idle server).
4. Cases: each abusive request (huge bodies with and without the key, a chunked body, deep JSON,
   a 20 MB text, over-long inputs, option scoring over and at its budget, lone surrogates and the
   next request on the same connection, mistyped fields, framework errors, a queue flood). While
   each runs, the valid request is sent again; its latency is compared with the normal one.
5. Shutdown: a long generation in flight, SIGTERM; ``/healthz`` must answer "draining", new work
   503 ``shutting_down``, the in-flight request finish or be cut by ``--drain-timeout``.

``--soak MINUTES`` replaces step 4: ``--soak-clients`` clients send valid requests at the
documented limits (32 inputs, inputs up to the token limit, option scoring, budgets up to 512
tokens) in a closed loop, retrying after ``Retry-After`` on 429/503, while an abuser cycles
through the abusive cases; it reports lost requests (no answer, a 5xx, or never answered after
retries) and the server's RSS at the start, the end and its peak.

Printed: the command, a table (case, expected and received status, the abusive request's time,
the valid request's latency meanwhile, peak RSS and its rise over idle); ``--json FILE`` writes
the same figures. The exit status is 1 when a case got an unexpected status or a 500.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import torch

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SENTENCES = [
    "Started metformin 500 mg twice daily for type 2 diabetes mellitus.",
    "Severe hepatotoxicity developed two weeks after starting ketoconazole.",
    "Patient reports chest pain radiating to the left arm since this morning.",
    "Hb 9.8 g/dL, ferritin low; iron supplementation was begun.",
    "Lisinopril was stopped because of a persistent dry cough.",
    "Warfarin dose reduced after INR of 4.2; no bleeding reported.",
]
VALID = {
    "task": "ner_0",
    "inputs": [{"text": SENTENCES[0]}],
    "mode": "generate",
    "max_new_tokens": 16,
}


# ----------------------------------------------------------------------------- server and memory
def build_bank(backbone, path: Path, prompt_tokens: int, seed: int) -> None:
    from clinprompt.prompts.bank import PromptBank, TaskEntry

    gen = torch.Generator().manual_seed(seed)
    emb = backbone.model.get_input_embeddings().weight.detach().float().cpu()
    bank = PromptBank.create(path, backbone.fingerprint, prompt_tokens)
    labels = {
        "ner": ["Drug", "Problem"],
        "qa": [],
        "nli": ["entailment", "neutral", "contradiction"],
    }
    for ttype, lab in labels.items():
        prompt = emb[torch.randint(0, 5000, (prompt_tokens,), generator=gen)]
        bank.add_prompt(TaskEntry(f"{ttype}_0", ttype, "prompt", labels=lab), prompt)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bank: Path, port: int, args, log_path: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "clinprompt",
        "serve",
        "--bank",
        str(bank),
        "--backbone",
        args.backbone,
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--watch",
        "0",
        "--drain-timeout",
        str(args.drain_timeout),
        "--log-level",
        "info",
    ]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.Popen(cmd, stderr=log_path.open("w"), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("the server did not become healthy within 300 s")


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Memory(threading.Thread):
    """Samples the server's VmRSS every 20 ms; :meth:`mark` starts a case, :meth:`peak` ends it."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.running, self._peak = pid, True, 0
        self.hwm_resettable = True

    def run(self) -> None:
        while self.running:
            try:
                self._peak = max(self._peak, _status_kb(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return
            time.sleep(0.02)

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def mark(self) -> None:
        self._peak = _status_kb(self.pid, "VmRSS")
        try:  # 5: reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.hwm_resettable = False

    def peak_mb(self) -> float:
        peak = self._peak
        if self.hwm_resettable:
            peak = max(peak, _status_kb(self.pid, "VmHWM"))
        return peak / 1024


# ------------------------------------------------------------------------------------- requests
def raw_request(
    port: int, head: bytes, body: Iterator[bytes], timeout: float = 60.0
) -> tuple[int, str, float, int]:
    """Send ``head`` then stream ``body`` until the response arrives.

    The body is written from a thread while the response is awaited, as an attacker would: a
    server that answers before reading the body answers at once. Returns (status, error code,
    seconds to the whole response, body bytes sent by then).
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent, done = [0], threading.Event()

    def writer() -> None:
        try:
            for chunk in body:
                if done.is_set():
                    return
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            return

    t0 = time.perf_counter()
    sock.sendall(head)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    data = b""
    try:
        while True:
            headers, _, rest = data.partition(b"\r\n\r\n")
            if _:
                length = re.search(rb"(?i)content-length: *(\d+)", headers)
                if length is None or len(rest) >= int(length.group(1)):
                    break
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        elapsed = time.perf_counter() - t0
        done.set()
        sock.close()
        thread.join(5)
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    try:
        code = json.loads(data.partition(b"\r\n\r\n")[2])["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return status, code, elapsed, sent[0]


def repeat(total: int, chunk: int = 1 << 20, fill: bytes = b"x", chunked: bool = False):
    block = fill * chunk
    left = total
    while left > 0:
        n = min(chunk, left)
        piece = block[:n]
        yield (b"%x\r\n" % n + piece + b"\r\n") if chunked else piece
        left -= n
    if chunked:
        yield b"0\r\n\r\n"


def head(path: str, length: int | None, key: bool, chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key:
        lines.append(f"Authorization: Bearer {KEY}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def long_text(tokens_approx: int) -> str:
    """Clinical-looking text of about ``tokens_approx`` tokens (about 16 tokens a sentence)."""
    out, i = [], 0
    while len(out) * 16 < tokens_approx:
        out.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    return " ".join(out)


def qa_input(options: int, context_tokens: int) -> dict:
    return {
        "question": "Which finding is most likely?",
        "context": long_text(context_tokens),
        "options": {f"O{k}": f"finding number {k}" for k in range(options)},
    }


# ---------------------------------------------------------------------------------------- cases
class Case:
    """An abusive request: its name, the statuses expected, and how to send it.

    ``send`` returns the (status, error code) of each response ("" when there is no JSON error).
    """

    def __init__(
        self, name: str, expected: set[int], send: Callable[[], list[tuple[int, str]]]
    ) -> None:
        self.name, self.expected, self.send = name, expected, send


def cases(port: int, huge_mb: int) -> list[Case]:
    url = f"http://127.0.0.1:{port}"
    huge = huge_mb * 2**20

    def post(body=None, content=None, headers=None, path="/v1/predict", key=True, method="POST"):
        hdrs = {**(AUTH if key else {}), **(headers or {})}
        with httpx.Client(base_url=url, timeout=120) as c:
            return outcome(c.request(method, path, json=body, content=content, headers=hdrs))[0]

    def raw(path, length, key, body, chunked=False):
        status, code, _, _ = raw_request(port, head(path, length, key, chunked), body)
        return [(status, code)]

    def surrogate_then_valid() -> list[tuple[int, str]]:
        bad = b'{"task":"ner_0","inputs":[{"id":"\\udc00","text":"a \\ud800 b"}]}'
        with httpx.Client(base_url=url, timeout=120, headers=AUTH) as c:
            first = c.post("/v1/predict", content=bad, headers={"content-type": "application/json"})
            second = c.post("/v1/predict", json=VALID)  # the same connection, kept alive
        return [*outcome(first), *outcome(second)]

    def flood() -> list[tuple[int, str]]:
        results: list[tuple[int, str]] = []
        lock = threading.Lock()

        def one(c):
            r = c.post("/v1/predict", json={**VALID, "max_new_tokens": 64})
            (got,) = outcome(r)
            if r.status_code == 429 and "retry-after" not in r.headers:
                got = (429, "no Retry-After")
            with lock:
                results.append(got)

        limits = httpx.Limits(max_connections=300)
        with httpx.Client(base_url=url, timeout=120, headers=AUTH, limits=limits) as c:
            threads = [threading.Thread(target=one, args=(c,)) for _ in range(300)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return sorted(set(results))

    valid_qa = {"task": "qa_0", "mode": "score"}
    return [
        Case(
            f"{huge_mb} MB body, no key",
            {401},
            lambda: raw("/v1/predict", huge, False, repeat(huge)),
        ),
        Case(
            f"{huge_mb} MB body, key", {413}, lambda: raw("/v1/predict", huge, True, repeat(huge))
        ),
        Case(
            "50 MB chunked body, key",
            {413},
            lambda: raw("/v1/predict", None, True, repeat(50 * 2**20, chunked=True), True),
        ),
        Case("10,000-deep JSON, no key", {401}, lambda: [post(content=b"[" * 10_000, key=False)]),
        Case("10,000-deep JSON, key", {422}, lambda: [post(content=b"[" * 10_000)]),
        Case(
            "20 MB text, key",
            {413},
            lambda: [post({"task": "ner_0", "inputs": [{"text": "a" * 20_000_000}]})],
        ),
        Case(
            "900,000-char text (under the body limit)",
            {413},
            lambda: [post({"task": "ner_0", "inputs": [{"text": "word " * 180_000}]})],
        ),
        Case(
            "6,000-token text (under the char limit)",
            {413},
            lambda: [post({"task": "ner_0", "inputs": [{"text": "word " * 6_000}]})],
        ),
        Case(
            "80 options x 1,000-token input",
            {422},
            lambda: [post({**valid_qa, "inputs": [qa_input(80, 1000)]})],
        ),
        Case(
            "32 inputs x 60 options x 400 tokens",
            {413},
            lambda: [post({**valid_qa, "inputs": [qa_input(60, 400)] * 32})],
        ),
        Case(
            "1 input x 60 options x 400 tokens (in budget)",
            {200},
            lambda: [post({**valid_qa, "inputs": [qa_input(60, 400)]})],
        ),
        Case(
            "12 inputs x 60 options x 400 tokens (in budget)",
            {200},
            lambda: [post({**valid_qa, "inputs": [qa_input(60, 400)] * 12})],
        ),
        Case(
            "8 inputs x 1,000 tokens, generate 64",
            {200},
            lambda: [
                post(
                    {
                        "task": "ner_0",
                        "inputs": [{"text": long_text(1000)}] * 8,
                        "max_new_tokens": 64,
                    }
                )
            ],
        ),
        Case("lone surrogates, then a valid request", {422, 200}, surrogate_then_valid),
        Case(
            'max_new_tokens "5" and true',
            {422},
            lambda: [
                post({**VALID, "max_new_tokens": "5"}),
                post({**VALID, "max_new_tokens": True}),
            ],
        ),
        Case(
            "object id, empty option key",
            {422},
            lambda: [
                post({"task": "ner_0", "inputs": [{"id": {"x": 1}, "text": "a"}]}),
                post(
                    {"task": "qa_0", "inputs": [{"question": "q", "options": {"": "a", "B": "b"}}]}
                ),
            ],
        ),
        Case(
            "unknown route, wrong method",
            {404, 405},
            lambda: [post(path="/nowhere", method="GET"), post(method="GET")],
        ),
        Case(
            "/docs and /openapi.json without key",
            {401},
            lambda: [
                post(path="/docs", method="GET", key=False),
                post(path="/openapi.json", method="GET", key=False),
            ],
        ),
        Case("flood: 300 concurrent requests", {200, 429}, flood),
    ]


def outcome(r: httpx.Response) -> list[tuple[int, str]]:
    """[(status, error code)] of a response."""
    code = ""
    if r.status_code >= 400:
        try:
            code = r.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "(not the documented JSON)"
    return [(r.status_code, code)]


def timed_valid(port: int) -> float:
    t0 = time.perf_counter()
    r = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json=VALID, headers=AUTH, timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"the valid request got {r.status_code}: {r.text[:200]}")
    return time.perf_counter() - t0


def run_case(case: Case, port: int, memory: Memory) -> dict:
    memory.mark()
    idle = memory.rss_mb()
    out: dict = {}

    def abuse() -> None:
        t0 = time.perf_counter()
        try:
            out["got"] = case.send()
        except Exception as err:  # a transport error is a result too
            out["got"], out["error"] = [(0, "")], repr(err)
        out["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=abuse)
    thread.start()
    time.sleep(0.1)  # the abusive request is under way
    try:
        meanwhile = timed_valid(port)
    except Exception as err:
        meanwhile, out["valid_error"] = float("nan"), repr(err)
    thread.join()
    time.sleep(0.1)
    statuses = {status for status, _ in out["got"]}
    return {
        "case": case.name,
        "expected": sorted(case.expected),
        "statuses": sorted(statuses),
        "codes": sorted({code for _, code in out["got"] if code}),
        "ok": statuses <= case.expected,
        "seconds": round(out["seconds"], 3),
        "valid_latency_s": round(meanwhile, 3),
        "rss_before_mb": round(idle, 1),
        "peak_rss_mb": round(memory.peak_mb(), 1),
        "rise_mb": round(memory.peak_mb() - idle, 1),
        **({"error": out["error"]} if "error" in out else {}),
        **({"valid_error": out["valid_error"]} if "valid_error" in out else {}),
    }


# ------------------------------------------------------------------------------------- shutdown
def shutdown(proc: subprocess.Popen, port: int, drain_timeout: float) -> dict:
    """A long generation in flight, then SIGTERM: what the server answers while it drains."""
    url = f"http://127.0.0.1:{port}"
    long = {**VALID, "max_new_tokens": 512}
    got: dict = {}

    def in_flight() -> None:
        try:
            r = httpx.post(f"{url}/v1/predict", json=long, headers=AUTH, timeout=120)
            got["in_flight"] = r.status_code
            got["in_flight_code"] = (
                r.json().get("error", {}).get("code") if r.status_code != 200 else None
            )
        except httpx.HTTPError as err:
            got["in_flight"] = repr(err)

    thread = threading.Thread(target=in_flight)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/healthz", timeout=5).json()["in_flight"] > 0:
            break
        time.sleep(0.01)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    health, refused = Counter(), Counter()
    while proc.poll() is None and time.perf_counter() - t0 < drain_timeout + 30:
        try:
            health[httpx.get(f"{url}/healthz", timeout=2).json()["status"]] += 1
            r = httpx.post(f"{url}/v1/predict", json=VALID, headers=AUTH, timeout=5)
            refused[f"{r.status_code} {r.json().get('error', {}).get('code', '')}".strip()] += 1
        except httpx.HTTPError:
            health["(connection refused: exiting)"] += 1
            time.sleep(0.05)
    proc.wait(60)
    thread.join(60)
    return {
        "exit_s": round(time.perf_counter() - t0, 2),
        "returncode": proc.returncode,
        "healthz_while_draining": dict(health),
        "new_requests_while_draining": dict(refused),
        "in_flight_request": got.get("in_flight"),
        "in_flight_code": got.get("in_flight_code"),
    }


# ----------------------------------------------------------------------------------------- soak
def soak(port: int, memory: Memory, minutes: float, clients: int, seed: int, huge_mb: int) -> dict:
    """Valid traffic at the documented limits with abuse mixed in; lost requests and RSS."""
    url = f"http://127.0.0.1:{port}"
    stop_at = time.monotonic() + minutes * 60
    counts: Counter = Counter()
    lock = threading.Lock()
    latencies: list[float] = []

    def valid_body(rng: random.Random) -> dict:
        kind = rng.random()
        if kind < 0.4:  # the most inputs, of mixed lengths up to the token limit
            inputs = [{"text": long_text(rng.choice([20, 200, 900]))} for _ in range(32)]
            return {
                "task": "ner_0",
                "inputs": inputs,
                "mode": "generate",
                "max_new_tokens": rng.choice([8, 32]),
            }
        if kind < 0.7:  # option scoring up to its budget (options x tokens)
            options, count = rng.choice([(4, 16), (20, 3), (60, 1)])
            shape = (options, 400)
            return {
                "task": "qa_0",
                "inputs": [qa_input(*shape)] * count,
                "mode": "score",
            }
        if kind < 0.9:
            premise = long_text(rng.choice([20, 900]))
            return {
                "task": "nli_0",
                "inputs": [{"premise": premise, "hypothesis": SENTENCES[1]}] * 8,
            }
        return {**VALID, "max_new_tokens": 512}  # the largest generation budget

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        with httpx.Client(base_url=url, timeout=300, headers=AUTH) as c:
            while time.monotonic() < stop_at:
                body = valid_body(rng)
                with lock:
                    counts["valid sent"] += 1
                t0 = time.perf_counter()
                for _attempt in range(20):
                    try:
                        r = c.post("/v1/predict", json=body)
                    except httpx.HTTPError:
                        status = 0
                    else:
                        status = r.status_code
                    if status in (429, 503) and r.json()["error"]["code"] != "shutting_down":
                        with lock:
                            counts[f"valid retried after {status}"] += 1
                        time.sleep(float(r.headers.get("retry-after", 1)))
                        continue
                    break
                with lock:
                    if status == 200:
                        counts["valid answered"] += 1
                        latencies.append(time.perf_counter() - t0)
                    else:
                        counts[f"valid LOST ({status})"] += 1

    abusive = [c for c in cases(port, huge_mb) if c.expected != {200} and "flood" not in c.name]

    def abuser() -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            case = rng.choice(abusive)
            try:
                statuses = [status for status, _ in case.send()]
            except Exception:
                statuses = [0]
            with lock:
                counts["abusive sent"] += 1
                if not set(statuses) <= case.expected:
                    counts[f"abusive unexpected {statuses} ({case.name})"] += 1
            time.sleep(0.2)

    time.sleep(1)
    idle = memory.rss_mb()
    memory.mark()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=abuser))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    # RSS every 5 s; "start" is the RSS once the traffic has warmed the server up (the first
    # quarter of the soak, at most a minute): allocator pools and caches fill once, a leak grows
    series: list[tuple[float, float]] = []
    warm_s = min(60.0, minutes * 60 / 4)
    while any(t.is_alive() for t in threads):
        series.append((round(time.perf_counter() - t0, 1), round(memory.rss_mb(), 1)))
        time.sleep(5)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    peak = memory.peak_mb()
    time.sleep(3)  # let the last answers' buffers go
    end = memory.rss_mb()
    start = next((rss for t, rss in series if t >= warm_s), series[-1][1] if series else idle)
    lost = sum(v for k, v in counts.items() if k.startswith("valid LOST"))
    return {
        "minutes": minutes,
        "wall_s": round(wall, 1),
        "clients": clients,
        "counts": dict(counts),
        "lost": lost,
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_max_s": round(max(latencies), 2) if latencies else None,
        "rss_idle_mb": round(idle, 1),
        "warm_up_s": warm_s,
        "rss_start_mb": round(start, 1),
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_end_over_start": round(end / start, 3),
        "rss_series": series,
    }


# ----------------------------------------------------------------------------------------- main
def table(rows: list[dict], normal: float) -> str:
    head_ = (
        f"{'case':<46} {'expect':>7} {'got':>7} {'code':<26} {'time s':>7} {'valid s':>7} "
        f"{'peak MB':>7} {'rise MB':>7}"
    )
    lines = [head_, "-" * len(head_)]
    for r in rows:
        queued = "flood" in r["case"]  # the valid request waits behind the inputs it admitted
        slow = r["valid_latency_s"] - normal > 2 and not queued
        mark = "" if r["ok"] and not slow else "  <--"
        lines.append(
            f"{r['case']:<46} {','.join(map(str, r['expected'])):>7} "
            f"{','.join(map(str, r['statuses'])):>7} {','.join(r['codes'])[:26]:<26} "
            f"{r['seconds']:>7.2f} {r['valid_latency_s']:>7.2f} {r['peak_rss_mb']:>7.0f} "
            f"{r['rise_mb']:>7.0f}{mark}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="tiny-llama", help="tiny-llama | smollm2-135m | ...")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    ap.add_argument("--prompt-tokens", type=int, default=20)
    ap.add_argument("--huge-mb", type=int, default=300, help="size of the huge bodies")
    ap.add_argument("--drain-timeout", type=float, default=5.0, help="the server's --drain-timeout")
    ap.add_argument("--soak", type=float, default=None, metavar="MINUTES")
    ap.add_argument("--soak-clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, metavar="FILE")
    args = ap.parse_args()
    command = "python bench/serve_abuse.py " + shlex.join(sys.argv[1:])
    print(f"command: {command}", flush=True)

    from clinprompt.backbone import load_backbone
    from clinprompt.serve.admission import Limits

    backbone = load_backbone(args.backbone, device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="clinprompt-abuse-"))
    build_bank(backbone, tmp / "bank", args.prompt_tokens, args.seed)
    del backbone
    port, log_path = free_port(), tmp / "server.log"
    proc = start_server(tmp / "bank", port, args, log_path)
    memory = Memory(proc.pid)
    memory.start()
    result: dict = {
        "command": command,
        "backbone": args.backbone,
        "device": args.device or "default",
        "limits": Limits().__dict__,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    try:
        for _ in range(3):  # warm-up (first calls pay one-off costs)
            timed_valid(port)
        normal = statistics.median(timed_valid(port) for _ in range(10))
        result["idle_rss_mb"] = round(memory.rss_mb(), 1)
        result["normal_latency_s"] = round(normal, 3)
        if args.soak:
            result["soak"] = soak(
                port, memory, args.soak, args.soak_clients, args.seed, args.huge_mb
            )
        else:
            result["cases"] = [run_case(c, port, memory) for c in cases(port, args.huge_mb)]
        result["shutdown"] = shutdown(proc, port, args.drain_timeout)
    finally:
        memory.running = False
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    log_lines = log_path.read_text(errors="replace").splitlines()
    levels = Counter()
    for line in log_lines:
        try:
            levels[json.loads(line)["level"]] += 1
        except (ValueError, KeyError):
            levels["(uvicorn text)"] += 1
    result["server_log_lines"] = dict(levels)

    print(
        f"backbone {args.backbone} on {result['device']} ({os.cpu_count()} CPUs, load average "
        f"{result['load_average']:.1f}); idle RSS {result['idle_rss_mb']:.0f} MB; normal latency of "
        f"the valid request {result['normal_latency_s']:.3f} s"
    )
    failed = False
    if "cases" in result:
        print(table(result["cases"], normal))
        worst = max(r["rise_mb"] for r in result["cases"])
        slowest = max(r["valid_latency_s"] for r in result["cases"] if "flood" not in r["case"])
        failed = not all(r["ok"] for r in result["cases"])
        no500 = all(500 not in r["statuses"] for r in result["cases"])
        print(
            f"largest RSS rise over idle: {worst:.0f} MB; slowest valid request meanwhile (the "
            f"flood aside: there it queues behind the inputs admitted first): {slowest:.2f} s "
            f"(normal {normal:.3f} s); unexpected statuses: {failed}; no 500: {no500}"
        )
    if "soak" in result:
        s = result["soak"]
        print(f"soak: {s['minutes']} min, {s['clients']} clients + 1 abuser: {s['counts']}")
        print(
            f"  lost {s['lost']}; latency p50 {s['latency_p50_s']} s, max {s['latency_max_s']} s; "
            f"RSS idle {s['rss_idle_mb']:.0f} MB, start (after {s['warm_up_s']:.0f} s of traffic) "
            f"{s['rss_start_mb']:.0f} MB, end {s['rss_end_mb']:.0f} MB "
            f"({s['rss_end_over_start']:.3f}x), peak {s['rss_peak_mb']:.0f} MB"
        )
        print("  RSS every 5 s (s, MB):", " ".join(f"{t:.0f}:{m:.0f}" for t, m in s["rss_series"]))
        failed = failed or s["lost"] > 0
    sd = result["shutdown"]
    print(
        f"shutdown: SIGTERM with a 512-token request in flight -> in-flight {sd['in_flight_request']} "
        f"{sd['in_flight_code'] or ''}; healthz while draining {sd['healthz_while_draining']}; new "
        f"requests {sd['new_requests_while_draining']}; exited after {sd['exit_s']} s (code {sd['returncode']})"
    )
    print(f"server log lines by level: {result['server_log_lines']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
