#!/usr/bin/python3
"""The decoder of eval/bench_decoder.cpp written the reference's way in plain PyTorch (WavLLM's
llama.py: complex rotary embedding, LoRA terms scaled by the prompt vector, a KV cache grown with
torch.cat each step, logits of every position), random weights, same shape, dtype and threads.
Prints "RESULT prefill <s>", "RESULT decode <s for all new tokens>", "RESULT peak_rss_gib <GiB>".

Usage: /usr/bin/python3 eval/bench_decoder.py --config config.json --dtype bfloat16 [--prompt P] [--new N]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    c = json.load(open(a.config))["llama"]
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[a.dtype]
    dim, heads, ffn, r, vocab = c["dim"], c["n_heads"], c["ffn_dim"], c["lora_r"], c["vocab_size"]
    hd = dim // heads
    eps = c["norm_eps"]

    def normal(*shape):
        return torch.empty(*shape, dtype=dtype).normal_(0.0, 0.02)

    layers = [dict(an=torch.ones(dim, dtype=dtype), fn=torch.ones(dim, dtype=dtype),
                   **{m: normal(dim, dim) for m in ("wq", "wk", "wv", "wo")},
                   **{m + "A": normal(dim, r) for m in ("wq", "wk", "wv", "wo")},
                   **{m + "B": normal(r, dim) for m in ("wq", "wk", "wv", "wo")},
                   w1=normal(ffn, dim), w2=normal(dim, ffn), w3=normal(ffn, dim))
              for _ in range(c["n_layers"])]
    emb, norm_w, out_w = normal(vocab, dim), torch.ones(dim, dtype=dtype), normal(vocab, dim)
    freqs = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    freqs_cis = torch.polar(torch.ones(2 * c["max_seq_len"], hd // 2),
                            torch.outer(torch.arange(2 * c["max_seq_len"]), freqs).float())
    scale = (torch.rand(1, dim) * 2).to(dtype)

    def rms(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * w

    def rotary(x, fc):
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * fc.view(1, xc.shape[1], 1, xc.shape[-1])).flatten(3).type_as(x)

    def forward(h, start, cache):
        b, t, _ = h.shape
        fc = freqs_cis[start:start + t]
        mask = None
        if t > 1:
            mask = torch.triu(torch.full((1, 1, t, t), float("-inf")), diagonal=start + 1).type_as(h)
        for i, l in enumerate(layers):
            x = rms(h, l["an"])
            lora = lambda m, y: F.linear(y, l[m]) + (y @ l[m + "A"] @ l[m + "B"]) * scale.unsqueeze(1)
            q = lora("wq", x).view(b, t, heads, hd)
            k = lora("wk", x).view(b, t, heads, hd)
            v = lora("wv", x).view(b, t, heads, hd)
            q, k = rotary(q, fc), rotary(k, fc)
            if i in cache:
                k = torch.cat([cache[i][0], k], 1)
                v = torch.cat([cache[i][1], v], 1)
            cache[i] = (k, v)
            s = torch.matmul(q.transpose(1, 2), k.transpose(1, 2).transpose(2, 3)) / math.sqrt(hd)
            if mask is not None:
                s = s + mask
            p = F.softmax(s.float(), dim=-1).type_as(q)
            o = torch.matmul(p, v.transpose(1, 2)).transpose(1, 2).contiguous().view(b, t, -1)
            h = h + lora("wo", o)
            f = rms(h, l["fn"])
            h = h + F.linear(F.silu(F.linear(f, l["w1"])) * F.linear(f, l["w3"]), l["w2"])
        return F.linear(rms(h, norm_w), out_w)

    ids = torch.randint(3, vocab, (1, a.prompt))
    with torch.inference_mode():
        forward(F.embedding(ids[:, :8], emb), 0, {})  # warm-up
        best_p = best_d = float("inf")
        for _ in range(a.repeat):
            cache = {}
            t0 = time.perf_counter()
            forward(F.embedding(ids, emb), 0, cache)[:, -1].sum().item()
            t1 = time.perf_counter()
            for n in range(a.new):
                forward(F.embedding(torch.tensor([[3 + n]]), emb), a.prompt + n, cache)[:, -1].argmax().item()
            t2 = time.perf_counter()
            best_p, best_d = min(best_p, t1 - t0), min(best_d, t2 - t1)
    print("RESULT prefill", best_p)
    print("RESULT decode", best_d)
    print("RESULT peak_rss_gib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1048576.0)


if __name__ == "__main__":
    main()
