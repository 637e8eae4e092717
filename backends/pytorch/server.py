#!/usr/bin/env python3
"""tokenwatt's reference PyTorch model server.

Serves TorchServe's inference API for one causal language model, the way
loadgen --backend pytorch measures it:

  GET  /ping                  {"status": "Healthy"}
  GET  /models                {"models": [{"modelName": ..., "modelUrl": ...}]}
  POST /predictions/{model}   JSON {"prompt", "max_new_tokens", "min_new_tokens",
                              "temperature", "seed", "stream"}
  POST /tokenize              JSON {"prompt"} -> {"count", "max_model_len", "tokens"}:
                              the prompt's token ids, exactly as usage counts them
                              (vLLM's /tokenize shape; not part of TorchServe)

A streamed prediction is HTTP chunked transfer of newline-delimited JSON:
one {"text": ...} chunk per generated token, then {"usage": {"prompt_tokens",
"completion_tokens"}, "finish_reason": ...}: "stop" when the model produced
its end-of-sequence token, "length" when max_new_tokens (or the model's
context) ended it. A whole (non-streamed) answer is {"text", "usage",
"finish_reason"}. Errors are TorchServe's JSON bodies ({"code", "type",
"message"}); an error after the stream started is a final {"error": ...}
line.

Decoding is greedy unless temperature > 0 (then seeded sampling), and
honours min_new_tokens and max_new_tokens exactly: the end-of-sequence
token is masked until min_new_tokens tokens exist, and generation stops at
max_new_tokens. Requests run one at a time (the AIEnergyScore way), or
with --batch N in batches of up to N gathered for --batch-delay ms.

  server.py --tiny --device cpu            # built-in tiny model, torch only
  server.py --model /models/Qwen2.5-0.5B-Instruct --device cuda

--tiny is a small decoder-only transformer defined here, with seeded random
weights and a byte-level tokenizer: a real PyTorch forward pass per token
and no download. --model needs the transformers package (a local path, or
a Hugging Face model id already in the local cache). Only the Python
standard library and torch are required otherwise.
"""

import argparse
import json
import math
import os
import queue
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - reported in main()
    torch = None

PROG = "server.py"


def fail(msg, code=2):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------- models


class ByteTokenizer:
    """Bytes 0..255 are tokens 0..255; 256 is end-of-sequence. A token is
    shown as the Latin-1 character of its byte, so every generated token is
    exactly one character of streamed text."""

    eos_token_id = 256
    vocab_size = 257

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode_token(self, token):
        return bytes([token]).decode("latin-1") if token < 256 else ""


class Block(torch.nn.Module if torch else object):
    """A pre-norm transformer block with a key/value cache."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = torch.nn.LayerNorm(d_model)
        self.qkv = torch.nn.Linear(d_model, 3 * d_model)
        self.proj = torch.nn.Linear(d_model, d_model)
        self.ln2 = torch.nn.LayerNorm(d_model)
        self.ff = torch.nn.Sequential(
            torch.nn.Linear(d_model, 4 * d_model), torch.nn.GELU(), torch.nn.Linear(4 * d_model, d_model))

    def forward(self, x, keys_valid, cache):
        """x: (batch, new, d); keys_valid: (batch, cached + new) bool;
        cache: (k, v) of earlier positions or None. Returns x and the
        new cache."""
        b, t, d = x.shape
        h, dh = self.n_heads, d // self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, h, dh).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        tk = k.shape[2]
        causal = torch.arange(tk, device=x.device)[None, :] <= (torch.arange(t, device=x.device)[:, None] + tk - t)
        allowed = causal[None, None] & keys_valid[:, None, None, :]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(dh)
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        att = torch.nan_to_num(att)  # padding queries see no key at all
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.ff(self.ln2(x)), (k, v)


class TinyLM(torch.nn.Module if torch else object):
    """A small decoder-only transformer (GPT-style) over bytes, with a
    key/value cache: a prompt is one forward pass (prefill), each new
    token another (decode)."""

    def __init__(self, vocab=257, d_model=128, n_layers=2, n_heads=4, max_len=8192):
        super().__init__()
        self.max_len = max_len
        self.tok = torch.nn.Embedding(vocab, d_model)
        self.pos = torch.nn.Embedding(max_len, d_model)
        self.blocks = torch.nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.norm = torch.nn.LayerNorm(d_model)
        self.head = torch.nn.Linear(d_model, vocab, bias=False)

    def forward(self, ids, pos, keys_valid, caches):
        x = self.tok(ids) + self.pos(pos)
        new = []
        for block, cache in zip(self.blocks, caches or [None] * len(self.blocks)):
            x, c = block(x, keys_valid, cache)
            new.append(c)
        return self.head(self.norm(x[:, -1, :])), new


class Model:
    """The served model: a name, a tokenizer, and a batched next-token
    step over left-padded sequences."""

    def __init__(self, args):
        self.device = torch.device(args.device)
        if args.tiny:
            torch.manual_seed(args.seed)
            self.name = args.model_name or "tiny"
            self.url = "builtin:tiny"
            self.tokenizer = ByteTokenizer()
            self.net = TinyLM().to(self.device).eval()
            self.hf = False
            self.eos = ByteTokenizer.eos_token_id
            self.max_len = self.net.max_len
            return
        try:
            import transformers
        except ImportError:
            fail("--model needs the transformers package (pip install transformers), or use --tiny")
        transformers.logging.set_verbosity_error()
        path = args.model
        local = os.path.isdir(path)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=not local and args.offline)
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            self.net = transformers.AutoModelForCausalLM.from_pretrained(
                path, torch_dtype=dtype, local_files_only=not local and args.offline).to(self.device).eval()
        except (OSError, ValueError) as e:
            fail(f"model {path!r} not found or not loadable: {str(e).splitlines()[0]}")
        self.name = args.model_name or os.path.basename(os.path.normpath(path))
        self.url = path
        self.hf = True
        self.eos = self.tokenizer.eos_token_id
        self.max_len = getattr(self.net.config, "max_position_embeddings", 1 << 30)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token_id = self.eos if self.eos is not None else 0

    def encode(self, prompt):
        if self.hf:
            return self.tokenizer(prompt)["input_ids"]
        return self.tokenizer.encode(prompt)

    def decode_token(self, token, previous):
        """The text a token adds after the tokens in previous."""
        if not self.hf:
            return self.tokenizer.decode_token(token)
        before = self.tokenizer.decode(previous, skip_special_tokens=True)
        after = self.tokenizer.decode(previous + [token], skip_special_tokens=True)
        return after[len(before):]

    @torch.no_grad()
    def prefill(self, seqs):
        """One forward pass over the sequences (lists of ids), left-padded
        into a batch: the logits of each one's next token, and the state
        decode continues from."""
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        if self.hf:
            out = self.net(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            logits, cache = out.logits[:, -1, :], out.past_key_values
        else:
            logits, cache = self.net(ids, pos, mask.bool(), None)
        return logits.float(), (cache, mask)

    @torch.no_grad()
    def decode(self, state, tokens):
        """One forward pass for one new token per sequence of the batch
        prefill made."""
        cache, mask = state
        ids = torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None]
        pos = mask.sum(-1, keepdim=True)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        if self.hf:
            out = self.net(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
            logits, cache = out.logits[:, -1, :], out.past_key_values
        else:
            logits, cache = self.net(ids, pos, mask.bool(), cache)
        return logits.float(), (cache, mask)


# ---------------------------------------------------------------- generation


class Job:
    """One prediction: its parameters and the queue its tokens go to."""

    def __init__(self, ids, max_new, min_new, temperature, seed):
        self.ids = list(ids)
        self.prompt_tokens = len(ids)
        self.max_new = max_new
        self.min_new = min_new
        self.temperature = temperature
        self.generator = None
        if temperature > 0:
            self.generator = torch.Generator()
            self.generator.manual_seed(seed if seed is not None else 0)
        self.generated = []
        self.out = queue.Queue()
        self.cancelled = threading.Event()

    @property
    def done(self):
        return len(self.generated) >= self.max_new or self.cancelled.is_set()


class Engine:
    """Runs jobs on a worker thread, in batches of up to batch_size."""

    def __init__(self, model, batch_size, batch_delay, verbose=False):
        self.model = model
        self.batch_size = batch_size
        self.batch_delay = batch_delay
        self.verbose = verbose
        self.jobs = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="engine").start()

    def submit(self, job):
        self.jobs.put(job)

    def _run(self):
        while True:
            batch = [self.jobs.get()]
            deadline = time.monotonic() + self.batch_delay
            while len(batch) < self.batch_size:
                wait = deadline - time.monotonic()
                try:
                    batch.append(self.jobs.get(timeout=max(wait, 0)) if wait > 0 else self.jobs.get_nowait())
                except queue.Empty:
                    break
            if self.verbose:
                print(f"{PROG}: batch of {len(batch)}", file=sys.stderr, flush=True)
            try:
                self._generate(batch)
            except Exception as e:  # noqa: BLE001 - reported to every client of the batch
                for job in batch:
                    job.out.put(("error", f"{type(e).__name__}: {e}"))

    def _generate(self, batch):
        active = [j for j in batch if j.max_new > 0 and not j.cancelled.is_set()]
        for j in batch:
            if j not in active:
                j.out.put(("end", "length"))
        # A prefill for the batch, then one decode step per token; when a
        # sequence finishes, the rest are prefilled again without it (a
        # simple way to drop its rows from the key/value cache).
        state = None
        while active:
            if state is None:
                logits, state = self.model.prefill([j.ids for j in active])
            else:
                logits, state = self.model.decode(state, [j.ids[-1] for j in active])
            still = []
            for row, job in zip(logits, active):
                if self.model.eos is not None and len(job.generated) < job.min_new:
                    row[self.model.eos] = -math.inf
                if job.temperature > 0:
                    probs = F.softmax(row / job.temperature, dim=-1).cpu()
                    token = int(torch.multinomial(probs, 1, generator=job.generator))
                else:
                    token = int(torch.argmax(row))
                if token == self.model.eos:
                    job.out.put(("end", "stop"))
                    continue
                text = self.model.decode_token(token, job.generated)
                job.generated.append(token)
                job.ids.append(token)
                job.out.put(("token", text))
                if job.done or len(job.ids) >= self.model.max_len:
                    job.out.put(("end", "length"))
                else:
                    still.append(job)
            if len(still) != len(active):
                state = None
            active = still


# ---------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tokenwatt-pytorch"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, kind, message):
        self.send_json(status, {"code": int(status), "type": kind, "message": message})

    def do_GET(self):
        model = self.server.model
        if self.path == "/ping":
            self.send_json(HTTPStatus.OK, {"status": "Healthy"})
        elif self.path == "/models":
            self.send_json(HTTPStatus.OK, {"models": [{"modelName": model.name, "modelUrl": model.url}]})
        else:
            self.send_error_json(HTTPStatus.NOT_FOUND, "ResourceNotFoundException", f"Requested resource is not found: {self.path}")

    def do_POST(self):
        model = self.server.model
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if self.path.split("?")[0] == "/tokenize":
            self.tokenize(raw)
            return
        if not self.path.startswith("/predictions/"):
            self.send_error_json(HTTPStatus.NOT_FOUND, "ResourceNotFoundException", f"Requested resource is not found: {self.path}")
            return
        name = unquote(self.path[len("/predictions/"):].split("/")[0].split("?")[0])
        if name != model.name:
            self.send_error_json(HTTPStatus.NOT_FOUND, "ModelNotFoundException",
                                 f"Model not found: {name} (this server serves {model.name})")
            return
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
            prompt = req.get("prompt")
            if not isinstance(prompt, str):
                raise ValueError('"prompt" must be a string')
            max_new = int(req.get("max_new_tokens") or 256)
            min_new = int(req.get("min_new_tokens") or 0)
            temperature = float(req.get("temperature") or 0.0)
            seed = req.get("seed")
            seed = None if seed is None else int(seed)
            stream = bool(req.get("stream", True))
            if max_new < 0 or min_new < 0 or min_new > max_new or temperature < 0:
                raise ValueError("need 0 <= min_new_tokens <= max_new_tokens and temperature >= 0")
        except (ValueError, TypeError) as e:
            self.send_error_json(HTTPStatus.BAD_REQUEST, "BadRequestException", f"bad request body: {e}")
            return
        ids = model.encode(prompt)
        if len(ids) + max_new > model.max_len:
            self.send_error_json(HTTPStatus.BAD_REQUEST, "BadRequestException",
                                 f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new}) exceeds the model's {model.max_len}")
            return
        job = Job(ids, max_new, min_new, temperature, seed)
        self.server.engine.submit(job)
        if stream:
            self.stream(job)
        else:
            self.whole(job)

    def tokenize(self, raw):
        """vLLM's POST /tokenize for a prompt: the ids a prediction of the
        same prompt counts as its prompt_tokens (model.encode, special
        tokens included as a prediction adds them)."""
        model = self.server.model
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
            prompt = req.get("prompt")
            if not isinstance(prompt, str):
                raise ValueError('"prompt" must be a string (this server has no chat template: no "messages")')
            name = req.get("model")
            if name not in (None, "", model.name):
                self.send_error_json(HTTPStatus.NOT_FOUND, "ModelNotFoundException",
                                     f"Model not found: {name} (this server serves {model.name})")
                return
        except (ValueError, TypeError) as e:
            self.send_error_json(HTTPStatus.BAD_REQUEST, "BadRequestException", f"bad request body: {e}")
            return
        ids = [int(i) for i in model.encode(prompt)]
        self.send_json(HTTPStatus.OK, {"count": len(ids), "max_model_len": int(model.max_len), "tokens": ids})

    def events(self, job):
        while True:
            kind, value = job.out.get()
            yield kind, value
            if kind in ("end", "error"):
                return

    def usage(self, job):
        return {"prompt_tokens": job.prompt_tokens, "completion_tokens": len(job.generated)}

    def whole(self, job):
        text, finish = [], None
        for kind, value in self.events(job):
            if kind == "token":
                text.append(value)
            elif kind == "error":
                self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerException", value)
                return
            else:
                finish = value
        self.send_json(HTTPStatus.OK, {"text": "".join(text), "usage": self.usage(job), "finish_reason": finish})

    def stream(self, job):
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            for kind, value in self.events(job):
                if kind == "token":
                    chunk({"text": value})
                elif kind == "error":
                    chunk({"error": value})
                    break
                else:
                    chunk({"usage": self.usage(job), "finish_reason": value})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            job.cancelled.set()
            self.close_connection = True


def main():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="transformers model: a local directory or a cached Hugging Face id")
    what.add_argument("--tiny", action="store_true", help="the built-in tiny model (random weights, byte tokenizer)")
    p.add_argument("--model-name", help="name in /predictions/{name} (default: tiny, or the model directory's name)")
    p.add_argument("--device", default="cpu", help="cuda, cuda:N or cpu (default cpu)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080, TorchServe's inference port)")
    p.add_argument("--batch", type=int, default=1, help="largest batch; 1 serves requests one at a time (default)")
    p.add_argument("--batch-delay", type=float, default=5.0, help="ms to wait for a batch to fill (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny model's weights (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--offline", action="store_true", default=True, help=argparse.SUPPRESS)
    p.add_argument("--verbose", action="store_true", help="log every request and batch")
    args = p.parse_args()

    if torch is None:
        fail("PyTorch is not installed (apt-get install python3-torch, or pip install torch)")
    if args.batch < 1:
        fail("--batch must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {args.device}: CUDA is not available (torch {torch.__version__}, "
             f"torch.cuda.is_available() is False); use --device cpu")
    try:
        torch.device(args.device)
    except RuntimeError as e:
        fail(f"--device {args.device}: {e}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model = Model(args)
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as e:
        fail(f"cannot listen on {args.host}:{args.port}: {e.strerror}")
    server.daemon_threads = True
    server.model = model
    server.engine = Engine(model, args.batch, args.batch_delay / 1000, args.verbose)
    server.verbose = args.verbose
    host, port = server.server_address[:2]
    print(f"{PROG}: serving {model.name!r} ({model.url}) on {args.device} at http://{host}:{port} "
          f"(batch {args.batch}); TorchServe inference API: /ping, /models, /predictions/{model.name}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
