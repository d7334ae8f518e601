"""Eager PyTorch reference of the whole WavLLM inference path (docs/model.md §2-§6).

Written from docs/model.md and the original code (WavLLM's speechllm_model.py, whisper_encoder.py,
wavlm.py, llama.py; HF WhisperEncoder and WavLMModel) as plain functions over a weight dict,
one function per stage so a failing engine stage can be compared in isolation:

    ref = Reference.load("models/demo")
    mels, frames = ref.log_mel(samples)
    parts = ref.whisper_encoder(mels, frames)        # per part [T, d], cut as in docs/model.md §2
    wb = ref.whisper_branch(parts)                    # [T1, branch_dim]
    hidden = ref.wavlm_hidden_states(samples)         # layers + 1 of [T, h]
    vb = ref.wavlm_branch(ref.wavlm_weighted(hidden)) # [T2, branch_dim]
    emb = ref.fuse(wb, vb)                            # [min(T1, T2), dim]
    left, right, orig = ref.prompt_ids(instruction)
    scale = ref.prompt_scale(orig)                    # [dim]
    out = ref.decode(emb, left, right, scale, max_new_tokens=10)
    result = ref.run(samples, instruction)            # all of the above, with timings

Every stage's wall time is added to `ref.timings[stage]`, and `ref.on_stage(stage, seconds)`
(a settable callback) is called after each one. Everything runs in float32 at batch size 1,
on the device given to `Reference.load` (CPU by default; on CUDA each stage timing ends with
a synchronisation, so it covers the stage's kernels).
"""
import importlib.util
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import frontend

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_safetensors_io():
    # The project's numpy safetensors reader, by file: importing the `wavllm` package would
    # also load the compiled engine, which the reference must not depend on.
    path = os.path.join(_ROOT, "python", "wavllm", "safetensors_io.py")
    spec = importlib.util.spec_from_file_location("wavllm_safetensors_io", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


stio = _load_safetensors_io()


# ---------------------------------------------------------------- shared pieces

def linear(x, w, b=None):
    return F.linear(x, w, b)


def subsample_adapter_projector(x, W, prefix, eps=1e-5):
    """A branch after its encoder: Conv1dSubsampler (two k3/s2/p1 convs, GLU over channels),
    bottleneck adapter LayerNorm(up(GELU(down(x)))) + x, projector. x: [T, C] -> [T', out]."""
    h = x.t().unsqueeze(0)
    for i in range(2):
        h = F.conv1d(h, W[f"{prefix}.subsample.conv_layers.{i}.weight"],
                     W[f"{prefix}.subsample.conv_layers.{i}.bias"], stride=2, padding=1)
        h = F.glu(h, dim=1)
    h = h[0].t()
    a = linear(F.gelu(linear(h, W[f"{prefix}.adapter.down_layer.weight"], W[f"{prefix}.adapter.down_layer.bias"])),
               W[f"{prefix}.adapter.up_layer.weight"], W[f"{prefix}.adapter.up_layer.bias"])
    h = F.layer_norm(a, (a.shape[-1],), W[f"{prefix}.adapter.layer_norm.weight"],
                     W[f"{prefix}.adapter.layer_norm.bias"], eps) + h
    return linear(h, W[f"{prefix}.projector.weight"], W[f"{prefix}.projector.bias"])


def attention(q, k, v, heads, bias=None, mask=None):
    """Multi-head attention of [Tq, D] queries over [Tk, D]; q must already be scaled.
    bias: [heads, Tq, Tk] added to the scores; mask: additive [Tq, Tk]."""
    tq, d = q.shape
    hd = d // heads
    qh = q.view(tq, heads, hd).transpose(0, 1)
    kh = k.view(-1, heads, hd).transpose(0, 1)
    vh = v.view(-1, heads, hd).transpose(0, 1)
    scores = qh @ kh.transpose(1, 2)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores + mask
    return (torch.softmax(scores, dim=-1) @ vh).transpose(0, 1).reshape(tq, d)


# ---------------------------------------------------------------- result

@dataclass
class Result:
    """Everything `Reference.run` computed, stage by stage."""
    mels: np.ndarray = None
    frames: np.ndarray = None
    whisper_parts: list = None
    whisper_valid_lens: list = None
    whisper_branch: torch.Tensor = None
    wavlm_hidden: list = None
    wavlm_weighted: torch.Tensor = None
    wavlm_branch: torch.Tensor = None
    audio_embeds: torch.Tensor = None
    left_ids: list = None
    right_ids: list = None
    orig_ids: list = None
    prompt_scale: torch.Tensor = None
    step_logits: torch.Tensor = None
    decoded_tokens: list = None
    generated_ids: list = None
    text: str = None
    timings: dict = field(default_factory=dict)

    def stage_arrays(self):
        """{name: np.ndarray} in the layout of tests/fixtures/stages/*.safetensors, so an
        engine stage can be compared on any audio and model exactly as with the fixtures."""
        out = {}
        for i, (enc, n) in enumerate(zip(self.whisper_parts, self.whisper_valid_lens)):
            out[f"whisper.part{i}.encoder_out"] = enc
            out[f"whisper.part{i}.valid_len"] = np.array([n], dtype=np.int64)
        for layer, h in enumerate(self.wavlm_hidden):
            out[f"wavlm.hidden.{layer}"] = h
        out.update({"wavlm.weighted": self.wavlm_weighted, "whisper_branch": self.whisper_branch,
                    "wavlm_branch": self.wavlm_branch, "audio_embeds": self.audio_embeds,
                    "prompt_scale": self.prompt_scale, "step_logits": self.step_logits})
        out = {k: v.detach().cpu().numpy() if torch.is_tensor(v) else v for k, v in out.items()}
        for key, ids in (("prompt.left_ids", self.left_ids), ("prompt.right_ids", self.right_ids),
                         ("prompt.orig_ids", self.orig_ids), ("decoded_tokens", self.decoded_tokens),
                         ("generated_ids", self.generated_ids)):
            out[key] = np.array(ids, dtype=np.int64)
        return out

    def save_stages(self, path, metadata=None):
        """Writes stage_arrays() as one safetensors file."""
        arrays = self.stage_arrays()
        tags = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
        entries = [(k, tags[v.dtype], list(v.shape)) for k, v in sorted(arrays.items())]
        stio.write_file(path, entries, arrays.__getitem__, metadata)


class Reference:
    """The reference model: a config dict (config.json) and float32 weights by checkpoint name."""

    def __init__(self, config, weights, tokenizer=None, device="cpu"):
        self.cfg = config
        self.device = torch.device(device)
        self.W = {k: v.to(self.device) for k, v in weights.items()}
        self.sp = tokenizer
        self.timings = {}
        self.on_stage = None
        lc = config["llama"]
        hd = lc["dim"] // lc["n_heads"]
        freqs = 1.0 / (lc["rope_theta"] ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
        angles = torch.outer(torch.arange(2 * lc["max_seq_len"]).float(), freqs)
        self.rope = torch.polar(torch.ones_like(angles), angles).to(self.device)  # [positions, hd/2]

    @classmethod
    def load(cls, model_dir, tokenizer=True, device="cpu"):
        """Loads config.json, model*.safetensors and (with tokenizer=True, which needs the
        sentencepiece module) tokenizer.model from a model directory onto `device`."""
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        arrays = stio.read_model_dir(model_dir, dtype="F32")
        weights = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items()}
        sp = None
        if tokenizer:
            import sentencepiece
            sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
        return cls(cfg, weights, sp, device)

    def _timed(self, stage, fn, *args, **kwargs):
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        self.timings[stage] = self.timings.get(stage, 0.0) + dt
        if self.on_stage is not None:
            self.on_stage(stage, dt)
        return out

    # ------------------------------------------------------------ Whisper branch

    def log_mel(self, samples):
        return self._timed("log_mel", frontend.log_mel, samples, self.cfg["whisper"]["num_mel_bins"])

    def whisper_encoder(self, mels, frames):
        """Encodes the parts as one batch; returns per part [T, d], all cut to the longest
        valid length (valid = (frames - 1) // 2 + 1)."""
        return self._timed("whisper_encoder", self._whisper_encoder, mels, frames)

    def _whisper_encoder(self, mels, frames):
        c, W, p = self.cfg["whisper"], self.W, "audio_encoder.model."
        heads, eps = c["encoder_attention_heads"], c["layer_norm_eps"]
        x = torch.as_tensor(np.asarray(mels, dtype=np.float32), device=self.device)
        x = F.gelu(F.conv1d(x, W[p + "conv1.weight"], W[p + "conv1.bias"], padding=1))
        x = F.gelu(F.conv1d(x, W[p + "conv2.weight"], W[p + "conv2.bias"], stride=2, padding=1))
        x = x.transpose(1, 2) + W[p + "embed_positions.weight"][: x.shape[2]]
        d = x.shape[-1]
        scale = (d // heads) ** -0.5
        outs = []
        for part in x:  # batch 1 per part: identical to the batched computation
            h = part
            for i in range(c["encoder_layers"]):
                lp = f"{p}layers.{i}."
                r = h
                h = F.layer_norm(h, (d,), W[lp + "self_attn_layer_norm.weight"], W[lp + "self_attn_layer_norm.bias"], eps)
                q = linear(h, W[lp + "self_attn.q_proj.weight"], W[lp + "self_attn.q_proj.bias"]) * scale
                k = linear(h, W[lp + "self_attn.k_proj.weight"])
                v = linear(h, W[lp + "self_attn.v_proj.weight"], W[lp + "self_attn.v_proj.bias"])
                h = linear(attention(q, k, v, heads), W[lp + "self_attn.out_proj.weight"], W[lp + "self_attn.out_proj.bias"])
                h = r + h
                r = h
                h = F.layer_norm(h, (d,), W[lp + "final_layer_norm.weight"], W[lp + "final_layer_norm.bias"], eps)
                h = linear(F.gelu(linear(h, W[lp + "fc1.weight"], W[lp + "fc1.bias"])), W[lp + "fc2.weight"], W[lp + "fc2.bias"])
                h = r + h
            outs.append(F.layer_norm(h, (d,), W[p + "layer_norm.weight"], W[p + "layer_norm.bias"], eps))
        valid = [(int(f) - 1) // 2 + 1 for f in frames]
        cut = max(valid)
        return [o[:cut] for o in outs], valid

    def whisper_branch(self, parts):
        """Subsampler, adapter and projector per part, parts concatenated in time."""
        return self._timed("whisper_branch", lambda: torch.cat(
            [subsample_adapter_projector(o, self.W, "audio_encoder") for o in parts]))

    # ------------------------------------------------------------ WavLM branch

    def wavlm_hidden_states(self, samples):
        """HF WavLMModel hidden_states: [input of layer 0] + [output of each layer]."""
        return self._timed("wavlm_encoder", self._wavlm, samples)

    def _rel_bias(self, t):
        """Ungated relative position bias [heads, T, T] from layer 0's bucket embedding."""
        c = self.cfg["wavlm"]
        half = c["num_buckets"] // 2
        exact = half // 2
        # The bucket depends only on the offset key - query: compute it for the 2T - 1 offsets.
        rel = torch.arange(-(t - 1), t, device=self.device)
        bucket = (rel > 0).long() * half
        dist = rel.abs()
        large = exact + (torch.log(dist.float() / exact) / math.log(c["max_bucket_distance"] / exact)
                         * (half - exact)).long()
        large = torch.clamp(large, max=half - 1)
        bucket = bucket + torch.where(dist < exact, dist, large)
        emb = self.W["wavlm_encoder.model.encoder.layers.0.attention.rel_attn_embed.weight"]
        per_offset = emb[bucket].t()  # [heads, 2T - 1]
        pos = torch.arange(t, device=self.device)
        index = pos[None, :] - pos[:, None] + (t - 1)
        return per_offset[:, index]

    def _wavlm(self, samples):
        c, W, p = self.cfg["wavlm"], self.W, "wavlm_encoder.model."
        eps, heads, h_dim = c["layer_norm_eps"], c["num_attention_heads"], c["hidden_size"]
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32), device=self.device).view(1, 1, -1)
        if c.get("do_normalize", False):  # HF feature extractor: zero mean, unit variance
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
        for i, stride in enumerate(c["conv_stride"]):
            lp = f"{p}feature_extractor.conv_layers.{i}."
            x = F.conv1d(x, W[lp + "conv.weight"], W.get(lp + "conv.bias"), stride=stride)
            if i == 0:
                x = F.group_norm(x, x.shape[1], W[lp + "layer_norm.weight"], W[lp + "layer_norm.bias"], 1e-5)
            x = F.gelu(x)
        x = x[0].t()
        x = F.layer_norm(x, (x.shape[-1],), W[p + "feature_projection.layer_norm.weight"],
                         W[p + "feature_projection.layer_norm.bias"], eps)
        x = linear(x, W[p + "feature_projection.projection.weight"], W[p + "feature_projection.projection.bias"])
        # Positional conv with weight norm over dim 2: w = g * v / ||v|| (norm over dims 0, 1).
        v = W[p + "encoder.pos_conv_embed.conv.weight_v"]
        g = W[p + "encoder.pos_conv_embed.conv.weight_g"]
        w = g * v / v.norm(dim=(0, 1), keepdim=True)
        k = w.shape[-1]
        pos = F.conv1d(x.t().unsqueeze(0), w, W[p + "encoder.pos_conv_embed.conv.bias"],
                       padding=k // 2, groups=c["num_conv_pos_embedding_groups"])
        if k % 2 == 0:
            pos = pos[..., :-1]
        x = x + F.gelu(pos)[0].t()
        x = F.layer_norm(x, (h_dim,), W[p + "encoder.layer_norm.weight"], W[p + "encoder.layer_norm.bias"], eps)
        t = x.shape[0]
        bias = self._rel_bias(t)
        hd = h_dim // heads
        hidden = [x]
        for i in range(c["num_hidden_layers"]):
            lp = f"{p}encoder.layers.{i}.attention."
            # Gate per head and query from the layer input: GRU-style relative position gate.
            proj = linear(x.view(t, heads, hd).transpose(0, 1), W[lp + "gru_rel_pos_linear.weight"],
                          W[lp + "gru_rel_pos_linear.bias"]).view(heads, t, 2, 4).sum(-1)
            gate_a, gate_b = torch.sigmoid(proj).chunk(2, dim=-1)
            gate = gate_a * (gate_b * W[lp + "gru_rel_pos_const"][0] - 1.0) + 2.0  # [heads, T, 1]
            q = linear(x, W[lp + "q_proj.weight"], W[lp + "q_proj.bias"]) * hd ** -0.5
            kk = linear(x, W[lp + "k_proj.weight"], W[lp + "k_proj.bias"])
            vv = linear(x, W[lp + "v_proj.weight"], W[lp + "v_proj.bias"])
            a = linear(attention(q, kk, vv, heads, bias=gate * bias), W[lp + "out_proj.weight"], W[lp + "out_proj.bias"])
            lp = f"{p}encoder.layers.{i}."
            x = F.layer_norm(x + a, (h_dim,), W[lp + "layer_norm.weight"], W[lp + "layer_norm.bias"], eps)
            ff = linear(F.gelu(linear(x, W[lp + "feed_forward.intermediate_dense.weight"],
                                      W[lp + "feed_forward.intermediate_dense.bias"])),
                        W[lp + "feed_forward.output_dense.weight"], W[lp + "feed_forward.output_dense.bias"])
            x = F.layer_norm(x + ff, (h_dim,), W[lp + "final_layer_norm.weight"], W[lp + "final_layer_norm.bias"], eps)
            hidden.append(x)
        return hidden

    def wavlm_weighted(self, hidden):
        """softmax(output_weights)-weighted sum of the hidden states."""
        def run():
            wts = torch.softmax(self.W["wavlm_encoder.output_weights"], dim=0)
            return sum(h * wt for h, wt in zip(hidden, wts))
        return self._timed("wavlm_weighted", run)

    def wavlm_branch(self, weighted):
        return self._timed("wavlm_branch", subsample_adapter_projector, weighted, self.W, "wavlm_encoder")

    # ------------------------------------------------------------ fusion

    def fuse(self, whisper_branch, wavlm_branch):
        """Cut both branches to the shorter, concatenate (Whisper first), wavlm_audio_proj."""
        def run():
            t = min(whisper_branch.shape[0], wavlm_branch.shape[0])
            x = torch.cat([whisper_branch[:t], wavlm_branch[:t]], dim=-1)
            return linear(x, self.W["wavlm_audio_proj.weight"], self.W["wavlm_audio_proj.bias"])
        return self._timed("fusion", run)

    # ------------------------------------------------------------ prompt

    def prompt_ids(self, instruction):
        """(left, right, orig) token ids of docs/model.md §6."""
        if self.sp is None:
            raise RuntimeError("prompt_ids needs the sentencepiece tokenizer (python3-sentencepiece)")
        bos = self.cfg["tokens"]["bos"]
        left = [bos] + self.sp.encode("[INST]<<SYS>>\n" + self.cfg["system_prompt"] + "\n<</SYS>>\n\n<SPEECH>")
        right = self.sp.encode(" </SPEECH> " + instruction + " [/INST]")
        orig = self.sp.encode('"' + instruction + '"')
        return left, right, orig

    # ------------------------------------------------------------ LLaMA

    def _rms(self, x, w):
        eps = self.cfg["llama"]["norm_eps"]
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def _rotary(self, x, start):
        # Interleaved pairs (x[2i], x[2i+1]) rotated as complex numbers.
        t, heads, hd = x.shape
        if start + t > self.rope.shape[0]:
            raise ValueError(f"sequence of {start + t} positions exceeds the rotary table ({self.rope.shape[0]})")
        xc = torch.view_as_complex(x.float().reshape(t, heads, hd // 2, 2))
        return torch.view_as_real(xc * self.rope[start:start + t, None, :]).reshape(t, heads, hd)

    def _layer(self, i, x, start, cache, scale):
        """One decoder block; scale None = base weights only (the prompt adapter's pass)."""
        lc, W = self.cfg["llama"], self.W
        p = f"gpt_model.model_llama.layers.{i}."
        heads = lc["n_heads"]
        t, d = x.shape
        hd = d // heads

        def proj(name, inp):
            y = linear(inp, W[f"{p}attention.{name}.weight"])
            if scale is not None:
                y = y + (inp @ W[f"{p}attention.{name}_lora_A"] @ W[f"{p}attention.{name}_lora_B"]) * scale
            return y

        h = self._rms(x, W[p + "attention_norm.weight"])
        q = self._rotary(proj("wq", h).view(t, heads, hd), start)
        k = self._rotary(proj("wk", h).view(t, heads, hd), start)
        v = proj("wv", h).view(t, heads, hd)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k])
                v = torch.cat([cache["v"], v])
            cache["k"], cache["v"] = k, v
        mask = None
        if t > 1:
            mask = torch.triu(torch.full((t, k.shape[0]), float("-inf"), device=x.device),
                              diagonal=k.shape[0] - t + 1)
        a = attention((q / math.sqrt(hd)).reshape(t, d), k.reshape(-1, d), v.reshape(-1, d), heads, mask=mask)
        x = x + proj("wo", a)
        h = self._rms(x, W[p + "ffn_norm.weight"])
        ff = linear(F.silu(linear(h, W[p + "feed_forward.w1.weight"])) * linear(h, W[p + "feed_forward.w3.weight"]),
                    W[p + "feed_forward.w2.weight"])
        return x + ff

    def prompt_scale(self, orig_ids):
        """Prompt-aware LoRA scale: the instruction through the base decoder (no LoRA, no final
        norm), scale_fc_2(GELU(scale_fc_1(h))), attention pooling over tokens, relu, clamp 3."""
        def run():
            W, p = self.W, "gpt_model.model_llama."
            h = W[p + "tok_embeddings.weight"][torch.as_tensor(orig_ids, device=self.device)]
            for i in range(self.cfg["llama"]["n_layers"]):
                h = self._layer(i, h, 0, None, None)
            u = linear(F.gelu(linear(h, W[p + "scale_fc_1.weight"], W[p + "scale_fc_1.bias"])),
                       W[p + "scale_fc_2.weight"], W[p + "scale_fc_2.bias"])
            a = torch.softmax(linear(u, W[p + "scale_weight_attention.weight"], W[p + "scale_weight_attention.bias"]), dim=0)
            return torch.clamp(torch.relu((u * a).sum(0)), max=3.0)
        return self._timed("prompt_scale", run)

    def _forward(self, x, start, caches, scale):
        W, p = self.W, "gpt_model.model_llama."
        for i in range(self.cfg["llama"]["n_layers"]):
            x = self._layer(i, x, start, caches[i], scale)
        return linear(self._rms(x[-1:], W[p + "norm.weight"]), W[p + "output.weight"])[0]

    def decode(self, audio_embeds, left, right, scale, max_new_tokens=None):
        """Greedy decoding of docs/model.md §6. Returns (step_logits [steps, vocab], decoded_tokens,
        generated_ids): every step's raw logits, every token chosen after the initial BOS
        (forced prefix included), and the free tokens without EOS."""
        return self._timed("decode", self._decode, audio_embeds, left, right, scale, max_new_tokens)

    def _decode(self, audio_embeds, left, right, scale, max_new_tokens):
        lc, tok, W = self.cfg["llama"], self.cfg["tokens"], self.W
        emb = W["gpt_model.model_llama.tok_embeddings.weight"]
        max_steps = self.cfg["generation"]["max_steps"]
        caches = [{} for _ in range(lc["n_layers"])]
        x = torch.cat([emb[torch.as_tensor(left, device=self.device)], audio_embeds, emb[tok["bos"]][None]])
        pos, forced = 0, list(right[1:])
        logits_all, decoded, generated = [], [], []
        for step in range(max_steps):
            logits = self._forward(x, pos, caches, scale)
            pos += x.shape[0]
            logits_all.append(logits)
            if step < len(forced):
                nxt = forced[step]
            else:
                masked = logits.clone()
                masked[tok["pad"]] = float("-inf")
                if step == len(forced):  # at least one free token before EOS
                    masked[tok["eos"]] = float("-inf")
                nxt = int(torch.argmax(masked))
            decoded.append(nxt)
            if step >= len(forced):
                if nxt == tok["eos"]:
                    break
                generated.append(nxt)
                if max_new_tokens is not None and len(generated) >= max_new_tokens:
                    break
            x = emb[nxt][None]
        return torch.stack(logits_all), decoded, generated

    # ------------------------------------------------------------ whole pipeline

    def run(self, samples, instruction, max_new_tokens=None, mels=None, frames=None):
        """Runs every stage on a 16 kHz waveform; `mels`/`frames` skip the log-mel stage."""
        self.timings = {}
        r = Result()
        if mels is None:
            mels, frames = self.log_mel(samples)
        r.mels, r.frames = mels, frames
        r.whisper_parts, r.whisper_valid_lens = self.whisper_encoder(mels, frames)
        r.whisper_branch = self.whisper_branch(r.whisper_parts)
        r.wavlm_hidden = self.wavlm_hidden_states(samples)
        r.wavlm_weighted = self.wavlm_weighted(r.wavlm_hidden)
        r.wavlm_branch = self.wavlm_branch(r.wavlm_weighted)
        r.audio_embeds = self.fuse(r.whisper_branch, r.wavlm_branch)
        r.left_ids, r.right_ids, r.orig_ids = self.prompt_ids(instruction)
        r.prompt_scale = self.prompt_scale(r.orig_ids)
        r.step_logits, r.decoded_tokens, r.generated_ids = self.decode(
            r.audio_embeds, r.left_ids, r.right_ids, r.prompt_scale, max_new_tokens)
        r.text = self.sp.decode(r.generated_ids)
        r.timings = dict(self.timings)
        return r
