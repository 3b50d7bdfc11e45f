"""Load benchmark: ``clinprompt serve`` under concurrent mixed-task traffic vs per-task PEFT models.

    python bench/serve_load.py [--backbone smollm2-135m] [--tasks 4] [--clients 32] [--duration 90]
        [--dtype auto] [--json FILE]

1. Build a bank of ``--tasks`` tasks (random prompts: throughput does not depend on what a prompt
   learned) for the backbone in a temporary directory.
2. Start ``clinprompt serve --dtype DTYPE`` in a subprocess on 127.0.0.1 (a free port), wait for
   /healthz.
3. ``--clients`` concurrent clients send one-input requests for a random task in a loop for
   ``--duration`` seconds, then finish their in-flight request (nothing is abandoned). Every
   request is counted as answered (200) or failed; sent == answered + failed is checked.
   Latency p50/p95 per request.
4. Stop the server. The peer, in this process on the same CPUs/GPU and the same dtype: one PEFT
   PROMPT_TUNING model per task (``get_peft_model``, the task's prompt loaded) generating the same
   inputs with ``generate``, for ``--peer-duration`` seconds each way:

   * **the headline peer**: per-task batches of ``--max-batch`` (the server's batch size), tasks
     grouped, left padded, one batched ``generate`` per task group — what a competent user of
     PEFT does with mixed traffic;
   * second line: batch size 1 (exact: its tokens must equal the server's).

   The batched peer's outputs that differ from the batch-1 peer's on the same inputs are counted:
   PEFT ignores ``position_ids`` for prompt tuning, so left padding shifts positions.
5. Print the figures and the command; ``--json FILE`` writes them as one object
   (``bench/figures.py``) whose ``ratios`` name ``vs_peft_batched`` and ``vs_peft_batch1``
   (generated tokens/s, server over peer).

Every generation runs exactly ``--max-new-tokens`` greedy tokens unless EOS comes first, in both
systems (the same prompts and inputs give the same tokens, checked for the batch-1 peer).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from figures import bench_record, ratio, write_record  # noqa: E402

TYPES = ("ner", "sum", "qa", "re")
INPUTS = [
    "Started metformin 500 mg twice daily for type 2 diabetes mellitus.",
    "Severe hepatotoxicity developed two weeks after starting ketoconazole.",
    "Patient reports chest pain radiating to the left arm since this morning.",
    "Hb 9.8 g/dL, ferritin low; iron supplementation was begun.",
    "Lisinopril was stopped because of a persistent dry cough.",
    "CT chest shows a 6 mm nodule in the right upper lobe; follow-up in 12 months.",
    "Warfarin dose reduced after INR of 4.2; no bleeding reported.",
    "Admitted with community-acquired pneumonia, treated with ceftriaxone and azithromycin.",
    "History of atrial fibrillation on apixaban, presenting with syncope.",
    "Rash and fever after amoxicillin, consistent with a drug reaction.",
    "FINDINGS: No acute cardiopulmonary process. Mild degenerative changes of the spine.",
    "Blood glucose 312 mg/dL on arrival; insulin infusion started per protocol.",
]


def record_for(task_type: str, text: str) -> dict:
    """A request input of the task type carrying ``text``."""
    return {
        "ner": {"text": text},
        "sum": {"source": text},
        "qa": {"question": f"What is the main problem? {text}"},
        "re": {"text": text, "entities": []},
    }[task_type]


def build_bank(
    backbone, path: Path, num_tasks: int, prompt_tokens: int, seed: int
) -> list[tuple[str, str]]:
    from clinprompt.prompts.bank import PromptBank, TaskEntry

    gen = torch.Generator().manual_seed(seed)
    emb = backbone.model.get_input_embeddings().weight.detach().float().cpu()
    bank = PromptBank.create(path, backbone.fingerprint, prompt_tokens)
    tasks = []
    for k in range(num_tasks):
        ttype = TYPES[k % len(TYPES)]
        name = f"{ttype}_{k}"
        prompt = emb[
            torch.randint(0, 5000, (prompt_tokens,), generator=gen)
        ]  # vocab init, as training
        bank.add_prompt(TaskEntry(name, ttype, "prompt"), prompt)
        tasks.append((name, ttype))
    return tasks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bank: Path, port: int, args) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "clinprompt",
        "serve",
        "--bank",
        str(bank),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-batch",
        str(args.max_batch),
        "--wait-ms",
        str(args.wait_ms),
        "--prefill-group",
        str(args.prefill_group),
        "--max-defer-steps",
        str(args.max_defer_steps),
        "--max-queue",
        "4096",
        "--timeout",
        "600",
        "--watch",
        "0",
        "--log-level",
        "warning",
        "--backbone",
        args.backbone,
        "--dtype",
        args.dtype,
    ]
    if args.device:
        cmd += ["--device", args.device]
    # no API key on loopback (an empty key is refused at start-up, so the variable is dropped)
    env = {k: v for k, v in os.environ.items() if k != "CLINPROMPT_API_KEY"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)  # the server's torch threads, as the peer's
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the server did not become healthy within 300 s")


async def load(port: int, tasks, args) -> dict:
    """Closed-loop clients for ``duration`` seconds; returns counts, latencies and answers."""
    url = f"http://127.0.0.1:{port}/v1/predict"
    counts = {"sent": 0, "answered": 0, "failed": 0}
    latencies: list[float] = []
    answers: list[tuple[str, str, str, int]] = []  # task, input text, generation, tokens
    errors: list[str] = []
    stop_at = time.monotonic() + args.duration

    async def client(i: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(args.seed * 1000 + i)
        while time.monotonic() < stop_at:
            name, ttype = rng.choice(tasks)
            text = rng.choice(INPUTS)
            body = {
                "task": name,
                "inputs": [record_for(ttype, text)],
                "mode": "generate",
                "max_new_tokens": args.max_new_tokens,
            }
            counts["sent"] += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(url, json=body)
            except httpx.HTTPError as err:
                counts["failed"] += 1
                errors.append(repr(err))
                continue
            if r.status_code == 200:
                counts["answered"] += 1
                latencies.append(time.perf_counter() - t0)
                out = r.json()["outputs"][0]
                answers.append((name, text, out["generation"], out["generated_tokens"]))
            else:
                counts["failed"] += 1
                errors.append(f"{r.status_code} {r.text[:200]}")

    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(args.clients)))
        wall = time.perf_counter() - t0
    return {
        **counts,
        "wall_s": wall,
        "latencies": latencies,
        "answers": answers,
        "errors": errors[:5],
    }


def peer_models(backbone, bank_path: Path, tasks):
    """One PEFT prompt-tuning model per task, holding the task's prompt (patched for a correct cache)."""
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from clinprompt.prompts.bank import PromptBank
    from clinprompt.prompts.peft_interop import patch_peft_generation

    bank = PromptBank.load(bank_path)
    models = {}
    for name, _ in tasks:
        model = get_peft_model(
            copy.deepcopy(backbone.model),
            PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=bank.prompt_tokens),
        )
        with torch.no_grad():
            model.prompt_encoder["default"].embedding.weight.copy_(bank.task_prompt(name))
        models[name] = patch_peft_generation(model.eval())
    return models


def run_peer(backbone, bank_path: Path, models, work, args, batch_size: int) -> dict:
    """Generate ``work`` (task, text) in per-task batches of ``batch_size`` (tasks grouped, left
    padded; tasks take turns) for at most ``peer_duration`` s."""
    from clinprompt.data.collate import encode_prompt
    from clinprompt.prompts.bank import PromptBank
    from clinprompt.serve.runtime import load_task_table

    tok = backbone.tokenizer
    table = load_task_table(PromptBank.load(bank_path), tok, backbone.device, backbone.dtype)
    by_task: dict[str, list[tuple[str, list[int]]]] = {}
    # A seeded shuffle: the peer runs a uniform sample of the server's work when time runs out
    # (the answers' order favours short generations, which finish first on the server).
    work = list(work)
    random.Random(args.seed).shuffle(work)
    for name, text in work:  # the server's exact prompt ids
        rt = table.tasks[name]
        ids = encode_prompt(
            tok, rt.example(0, rt.check_input(0, record_for(rt.entry.task_type, text)))
        )
        by_task.setdefault(name, []).append((text, ids))
    # Each generate call serves one task's model; tasks take turns so that every task is measured.
    chunks = {
        name: [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        for name, items in by_task.items()
    }
    rounds = [
        (name, c[r])
        for r in range(max(map(len, chunks.values())))
        for name, c in chunks.items()
        if r < len(c)
    ]
    done, tokens, outputs, call_s = 0, 0, [], []
    device = backbone.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for name, items in by_task.items():  # warm-up, not timed (first calls pay one-off costs)
        models[name].generate(
            input_ids=torch.tensor([items[0][1]], device=device),
            max_new_tokens=2,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
    t0 = time.perf_counter()
    for name, chunk in rounds:
        if time.perf_counter() - t0 > args.peer_duration:
            break
        width = max(len(ids) for _, ids in chunk)
        ids = torch.tensor(
            [[tok.pad_token_id] * (width - len(x)) + x for _, x in chunk], device=device
        )
        mask = torch.tensor(
            [[0] * (width - len(x)) + [1] * len(x) for _, x in chunk], device=device
        )
        start = time.perf_counter()
        with torch.no_grad():
            out = models[name].generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
        sync()
        call_s.append(time.perf_counter() - start)
        for (text, _), row in zip(chunk, out[:, width:].tolist(), strict=True):
            new = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
            outputs.append((name, text, tok.decode(new, skip_special_tokens=True).strip()))
            tokens += len(new)
            done += 1
    wall = time.perf_counter() - t0
    return {"done": done, "tokens": tokens, "wall_s": wall, "outputs": outputs, "call_s": call_s}


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1]
        if len(values) > 1
        else (values[0] if values else float("nan"))
    )


def differing(outputs: list[tuple[str, str, str]], reference: dict[tuple[str, str], str]) -> dict:
    """How many of ``outputs`` (task, text, generation) differ from ``reference`` on the same
    (task, text); outputs without a reference are not compared."""
    compared = [(n, t, g) for n, t, g in outputs if (n, t) in reference]
    return {
        "compared": len(compared),
        "differing": sum(reference[(n, t)] != g for n, t, g in compared),
    }


def side_figures(done: int, tokens: int, wall_s: float, latencies: list[float]) -> dict:
    """Throughput and latency of one system (latencies: per request, or per generate call)."""
    return {
        "requests": done,
        "generated_tokens": tokens,
        "wall_s": round(wall_s, 2),
        "requests_per_s": round(done / wall_s, 3) if wall_s else 0.0,
        "generated_tokens_per_s": round(tokens / wall_s, 2) if wall_s else 0.0,
        "latency_p50_s": round(pct(latencies, 50), 3) if latencies else None,
        "latency_p95_s": round(pct(latencies, 95), 3) if latencies else None,
    }


def figures_record(res: dict, peer1: dict, peerb: dict, args, command: str, dtype: dict) -> dict:
    """The ``--json`` object: the server's figures, both peers', the named ratios."""
    server_out = {(n, t): g for n, t, g, _ in res["answers"]}
    batch1_out = {(n, t): g for n, t, g in peer1["outputs"]}
    server = side_figures(
        res["answered"], sum(a[3] for a in res["answers"]), res["wall_s"], res["latencies"]
    )
    server.update(
        sent=res["sent"],
        answered=res["answered"],
        failed=res["failed"],
        lost=res["sent"] - res["answered"] - res["failed"],
    )
    batched = side_figures(peerb["done"], peerb["tokens"], peerb["wall_s"], peerb["call_s"])
    batched.update(
        label=f"PEFT PROMPT_TUNING, generate in per-task batches of {args.max_batch}, left padded",
        latency_is="per generate call (a batch)",
        differing_from_batch1=differing(peerb["outputs"], batch1_out),
        differing_from_server=differing(peerb["outputs"], server_out),
    )
    single = side_figures(peer1["done"], peer1["tokens"], peer1["wall_s"], peer1["call_s"])
    single.update(
        label="second line: PEFT PROMPT_TUNING, generate at batch 1",
        latency_is="per generate call (one request)",
        differing_from_server=differing(peer1["outputs"], server_out),
    )
    tps = "generated_tokens_per_s"
    ratios = {
        "vs_peft_batched": ratio(server[tps], batched[tps]),
        "vs_peft_batch1": ratio(server[tps], single[tps]),
        "vs_peft_batched_requests": ratio(server["requests_per_s"], batched["requests_per_s"]),
        "vs_peft_batch1_requests": ratio(server["requests_per_s"], single["requests_per_s"]),
    }
    settings = {
        "backbone": args.backbone,
        "tasks": args.tasks,
        "prompt_tokens": args.prompt_tokens,
        "clients": args.clients,
        "duration_s": args.duration,
        "peer_duration_s": args.peer_duration,
        "max_new_tokens": args.max_new_tokens,
        "max_batch": args.max_batch,
        "prefill_group": args.prefill_group,
        "max_defer_steps": args.max_defer_steps,
    }
    notes = []
    if dtype.get("dtype") == "fp32" and dtype.get("requested") == "auto":
        notes.append(f"--dtype auto resolved to fp32 here ({dtype.get('reason')})")
    return bench_record(
        "serve_load",
        command,
        dtype,
        {"server": server},
        {"peft_batched": batched, "peft_batch1": single},
        ratios,
        settings,
        notes,
    )


def main(argv: list[str] | None = None) -> None:
    from clinprompt.precision import DTYPE_CHOICES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    ap.add_argument(
        "--dtype", default="auto", choices=DTYPE_CHOICES, help="server and peer dtype [auto]"
    )
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=50)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of client traffic")
    ap.add_argument("--peer-duration", type=float, default=60.0, help="seconds for each peer run")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--wait-ms", type=float, default=20.0)
    ap.add_argument("--prefill-group", type=int, default=4, help="the server's --prefill-group")
    ap.add_argument("--max-defer-steps", type=int, default=4, help="the server's --max-defer-steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for the server and the peer (on a shared CPU, 1 avoids oversubscription)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python bench/serve_load.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    from clinprompt.backbone import load_backbone

    backbone = load_backbone(args.backbone, device=args.device, dtype=args.dtype)
    dtype = backbone.dtype_choice.to_dict() if backbone.dtype_choice else {}
    tmp = Path(tempfile.mkdtemp(prefix="clinprompt-bench-"))
    tasks = build_bank(backbone, tmp / "bank", args.tasks, args.prompt_tokens, args.seed)
    port = free_port()
    server = start_server(tmp / "bank", port, args)
    try:
        for name, ttype in tasks:  # warm-up, not counted (first calls pay one-off costs)
            httpx.post(
                f"http://127.0.0.1:{port}/v1/predict",
                json={"task": name, "inputs": [record_for(ttype, INPUTS[0])], "max_new_tokens": 2},
                timeout=300,
            )
        res = asyncio.run(load(port, tasks, args))
    finally:
        server.terminate()
        server.wait(30)

    # ---- the peer at the same dtype: batched per task (headline), then batch 1
    work = [(name, text) for name, text, _, _ in res["answers"]]
    models = peer_models(backbone, tmp / "bank", tasks)
    peerb = run_peer(backbone, tmp / "bank", models, work, args, batch_size=args.max_batch)
    peer1 = run_peer(backbone, tmp / "bank", models, work, args, batch_size=1)
    record = figures_record(res, peer1, peerb, args, command, dtype)

    srv, pb, p1 = (
        record["figures"]["server"],
        record["peer"]["peft_batched"],
        record["peer"]["peft_batch1"],
    )
    print(f"\ncommand: {command}")
    print(
        f"device: {backbone.device} ({torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs), backbone {args.backbone} in {dtype.get('dtype')} ({dtype.get('reason')}), "
        f"{args.tasks} tasks, P={args.prompt_tokens}, max_new_tokens={args.max_new_tokens}, max_batch={args.max_batch}, "
        f"prefill_group={args.prefill_group}, max_defer_steps={args.max_defer_steps}"
    )
    for note in record["notes"]:
        print(f"NOTE: {note}")
    print(
        "\n| system | requests | req/s | generated tok/s | latency p50 / p95 | outputs differing |\n"
        "|---|---|---:|---:|---|---|"
    )
    print(
        f"| clinprompt serve ({args.clients} clients x {args.duration:.0f} s) | sent {srv['sent']}, "
        f"answered {srv['answered']}, failed {srv['failed']}, lost {srv['lost']} | "
        f"{srv['requests_per_s']:.2f} | {srv['generated_tokens_per_s']:.1f} | "
        f"{srv['latency_p50_s']:.2f} s / {srv['latency_p95_s']:.2f} s per request | — |"
    )
    for peer in (pb, p1):
        diffs = [
            f"{d['differing']}/{d['compared']} from {ref}"
            for key, ref in (
                ("differing_from_batch1", "batch 1"),
                ("differing_from_server", "server"),
            )
            if (d := peer.get(key)) is not None
        ]
        p50 = "—" if peer["latency_p50_s"] is None else f"{peer['latency_p50_s']:.2f} s"
        p95 = "—" if peer["latency_p95_s"] is None else f"{peer['latency_p95_s']:.2f} s"
        print(
            f"| {peer['label']} | {peer['requests']} in {peer['wall_s']:.1f} s | "
            f"{peer['requests_per_s']:.2f} | {peer['generated_tokens_per_s']:.1f} | "
            f"{p50} / {p95} per call | {'; '.join(diffs)} |"
        )
    r = record["ratios"]
    print(
        f"\nserver / PEFT batched per task (the fair peer): {r['vs_peft_batched']}x generated tok/s "
        f"({r['vs_peft_batched_requests']}x req/s); goal >= 3x\n"
        f"second line: server / PEFT at batch 1: {r['vs_peft_batch1']}x tok/s "
        f"({r['vs_peft_batch1_requests']}x req/s); the batch-1 peer differs from the server on "
        f"{p1['differing_from_server']['differing']}/{p1['differing_from_server']['compared']} outputs (must be 0)"
    )
    if res["errors"]:
        print("first errors:", *res["errors"], sep="\n  ")
    write_record(args.json, record)
    if srv["lost"] or srv["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
