#!/usr/bin/python3
"""The encoders of eval/bench_encoders.cpp written the reference's way in plain PyTorch (HF
WhisperEncoder and WavLMModel layouts: weight norm recomputed per forward, WavLM attention
through F.multi_head_attention_forward), random weights, same sizes and threads. Prints
"RESULT <encoder> <seconds>" (best of --repeat runs) for bench_encoders to tabulate.

Usage: /usr/bin/python3 eval/bench_encoders.py --config config.json --encoder whisper|wavlm
           [--threads N] [--seconds S] [--repeat R]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def normal(*shape):
    return torch.empty(*shape).normal_(0.0, 0.02)


def norm(n):
    return torch.ones(n), torch.zeros(n)


class Whisper:
    def __init__(self, c):
        d, ffn = c["d_model"], c["encoder_ffn_dim"]
        self.d, self.heads = d, c["encoder_attention_heads"]
        self.eps = c["layer_norm_eps"]
        self.conv1 = normal(d, c["num_mel_bins"], 3), normal(d)
        self.conv2 = normal(d, d, 3), normal(d)
        self.pos = normal(c["max_source_positions"], d)
        self.layers = [dict(ln1=norm(d), q=(normal(d, d), normal(d)), k=normal(d, d), v=(normal(d, d), normal(d)),
                            o=(normal(d, d), normal(d)), ln2=norm(d), fc1=(normal(ffn, d), normal(ffn)),
                            fc2=(normal(d, ffn), normal(d)))
                       for _ in range(c["encoder_layers"])]
        self.ln = norm(d)

    def attention(self, x, l):
        b, t, _ = x.shape
        hd = self.d // self.heads
        split = lambda y: y.view(b, t, self.heads, hd).transpose(1, 2).reshape(b * self.heads, t, hd)
        q = split(F.linear(x, *l["q"]) * hd ** -0.5)
        k = split(F.linear(x, l["k"]))
        v = split(F.linear(x, *l["v"]))
        ctx = torch.bmm(torch.bmm(q, k.transpose(1, 2)).softmax(-1), v)
        return F.linear(ctx.view(b, self.heads, t, hd).transpose(1, 2).reshape(b, t, self.d), *l["o"])

    def __call__(self, mel, layers=None):
        x = F.gelu(F.conv1d(mel, *self.conv1, padding=1))
        x = F.gelu(F.conv1d(x, *self.conv2, stride=2, padding=1)).permute(0, 2, 1) + self.pos
        for l in self.layers[:layers]:
            x = x + self.attention(F.layer_norm(x, (self.d,), *l["ln1"], self.eps), l)
            h = F.layer_norm(x, (self.d,), *l["ln2"], self.eps)
            x = x + F.linear(F.gelu(F.linear(h, *l["fc1"])), *l["fc2"])
        return F.layer_norm(x, (self.d,), *self.ln, self.eps)


class WavLM:
    def __init__(self, c):
        h, heads, ffn, k = c["hidden_size"], c["num_attention_heads"], c["intermediate_size"], c["num_conv_pos_embeddings"]
        self.c, self.h, self.heads, self.eps = c, h, heads, c["layer_norm_eps"]
        dims = [1] + c["conv_dim"]
        self.convs = [normal(dims[i + 1], dims[i], kk) for i, kk in enumerate(c["conv_kernel"])]
        self.gn = norm(dims[1])
        self.fp_ln, self.fp = norm(dims[-1]), (normal(h, dims[-1]), normal(h))
        self.pos_g, self.pos_v, self.pos_b = torch.ones(1, 1, k), normal(h, h // c["num_conv_pos_embedding_groups"], k), normal(h)
        self.enc_ln = norm(h)
        self.rel_embed = normal(c["num_buckets"], heads)
        self.layers = [dict(q=(normal(h, h), normal(h)), k=(normal(h, h), normal(h)), v=(normal(h, h), normal(h)),
                            o=(normal(h, h), normal(h)), gru=(normal(8, h // heads), normal(8)),
                            gru_const=torch.ones(1, heads, 1, 1), ln1=norm(h), ff1=(normal(ffn, h), normal(ffn)),
                            ff2=(normal(h, ffn), normal(h)), ln2=norm(h))
                       for _ in range(c["num_hidden_layers"])]
        self.output_weights = torch.zeros(c["num_hidden_layers"] + 1)

    def bias(self, t):
        half = self.c["num_buckets"] // 2
        exact = half // 2
        pos = torch.arange(t, device=self.rel_embed.device)
        rel = pos[None, :] - pos[:, None]
        bucket = (rel > 0).long() * half
        rel = rel.abs()
        far = torch.log(rel.float() / exact) / math.log(self.c["max_bucket_distance"] / exact) * (half - exact)
        far = torch.min((exact + far).long(), torch.full_like(rel, half - 1))
        bucket = bucket + torch.where(rel < exact, rel, far)
        return F.embedding(bucket, self.rel_embed).permute(2, 0, 1)

    def attention(self, x, l, bias):
        t = x.shape[1]
        g = F.linear(x.view(1, t, self.heads, -1).permute(0, 2, 1, 3), *l["gru"]).view(1, self.heads, t, 2, 4).sum(-1)
        a, b = torch.sigmoid(g).chunk(2, dim=-1)
        gated = ((a * (b * l["gru_const"] - 1.0) + 2.0).view(self.heads, -1, 1) * bias)
        q = x.transpose(0, 1)
        out, _ = F.multi_head_attention_forward(
            q, q, q, self.h, self.heads, torch.empty([0]), torch.cat((l["q"][1], l["k"][1], l["v"][1])), None, None,
            False, 0.0, l["o"][0], l["o"][1], False, None, False, gated, use_separate_proj_weight=True,
            q_proj_weight=l["q"][0], k_proj_weight=l["k"][0], v_proj_weight=l["v"][0])
        return out.transpose(0, 1)

    def __call__(self, wave):
        x = wave.view(1, 1, -1)
        for i, (w, s) in enumerate(zip(self.convs, self.c["conv_stride"])):
            x = F.conv1d(x, w, stride=s)
            if i == 0:
                x = F.group_norm(x, x.shape[1], *self.gn)
            x = F.gelu(x)
        x = F.linear(F.layer_norm(x.transpose(1, 2), (x.shape[1],), *self.fp_ln, self.eps), *self.fp)
        k = self.pos_v.shape[-1]
        pos = F.conv1d(x.transpose(1, 2), torch._weight_norm(self.pos_v, self.pos_g, 2), self.pos_b, padding=k // 2,
                       groups=self.c["num_conv_pos_embedding_groups"])
        x = F.layer_norm(x + F.gelu(pos[:, :, : x.shape[1]]).transpose(1, 2), (self.h,), *self.enc_ln, self.eps)
        bias = self.bias(x.shape[1])
        hidden = [x]
        for l in self.layers:
            x = F.layer_norm(x + self.attention(x, l, bias), (self.h,), *l["ln1"], self.eps)
            x = F.layer_norm(x + F.linear(F.gelu(F.linear(x, *l["ff1"])), *l["ff2"]), (self.h,), *l["ln2"], self.eps)
            hidden.append(x)
        weights = F.softmax(self.output_weights, dim=0)
        return torch.stack([o * w for o, w in zip(hidden, weights)]).sum(0)


def best_seconds(repeat, run):
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a wavllm config.json (its whisper and wavlm sections)")
    p.add_argument("--encoder", required=True, choices=["whisper", "wavlm"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seconds", type=float, default=30.0, help="WavLM input length")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.config))
    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {a.device} {a.dtype}")

    def to(obj):  # every tensor of a model to the device and dtype
        if isinstance(obj, torch.Tensor):
            return obj.to(device, dtype)
        if isinstance(obj, (list, tuple)):
            return type(obj)(to(o) for o in obj)
        if isinstance(obj, dict):
            return {k: to(v) for k, v in obj.items()}
        return obj

    with torch.inference_mode():
        sync = lambda y: y.sum().item()  # waits for the device
        if a.encoder == "whisper":
            w = cfg["whisper"]
            model = Whisper(w)
            model.__dict__.update(to(model.__dict__))
            mel = torch.randn(1, w["num_mel_bins"], 2 * w["max_source_positions"]).to(device, dtype)
            sync(model(mel, layers=1))  # warm-up at a fraction of the cost
            seconds = best_seconds(a.repeat, lambda: sync(model(mel)))
        else:
            model = WavLM(cfg["wavlm"])
            model.__dict__.update(to(model.__dict__))
            wave = (torch.randn(int(a.seconds * 16000)) * 0.1).to(device, dtype)
            sync(model(wave[:16000]))  # warm-up
            seconds = best_seconds(a.repeat, lambda: sync(model(wave)))
        print(f"RESULT {a.encoder} {seconds:.4f}", flush=True)


if __name__ == "__main__":
    main()
