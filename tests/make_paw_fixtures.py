#!/usr/bin/env python3
"""PyTorch reference of one whole PAW training step, for tests/test_paw_step.c.

A tiny compiler and a tiny interpreter (Hugging Face Qwen3, fp32), learned prefix embeddings and
the mapper, written independently of the C code from DESIGN.md's data flow:
  compiler(tokens + prefix) -> states at the prefix positions of layers teacher[l] (the last slot
  after the final norm) -> mean -> Linear+GELU -> Linear -> coefficients -> per-example LoRA on the
  7 projections of the frozen interpreter -> masked NLL on the target tokens -> backward.
Writes tests/fixtures/paw/{compiler,interpreter}/ (checkpoints), init.safetensors (prefix and
mapper weights), batch.safetensors (token ids) and reference.safetensors (loss and gradients).
Run from the project root: python3 tests/make_paw_fixtures.py (needs torch, transformers, safetensors).
"""
import os
import shutil

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Qwen3Config, Qwen3ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "paw")
MODULES = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
P, R, NB, ALPHA = 5, 4, 3, 8.0  # prefix length, LoRA rank, mapper bases, LoRA alpha

torch.manual_seed(0)


def tiny(hidden, layers, heads, kv, hd, inter, tie):
    cfg = Qwen3Config(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, head_dim=hd, vocab_size=300,
                      max_position_embeddings=128, rope_theta=1e6, rms_norm_eps=1e-6,
                      tie_word_embeddings=tie, attn_implementation="eager")
    m = Qwen3ForCausalLM(cfg).float()
    with torch.no_grad():
        for n, p in m.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if n.endswith("norm.weight") else 0.1 * torch.randn_like(p))
    return m


comp = tiny(48, 4, 4, 2, 16, 64, True)
interp = tiny(32, 3, 2, 1, 24, 56, False)
for d, m in (("compiler", comp), ("interpreter", interp)):
    path = os.path.join(OUT, d)
    shutil.rmtree(path, ignore_errors=True)
    m.save_pretrained(path, safe_serialization=True)
    gc = os.path.join(path, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)
interp.requires_grad_(False)
Lc, Li, dc = 4, 3, 48
teacher = [int((l + 1) * Lc / Li) - 1 for l in range(Li)]


def dims(name):
    c = interp.config
    C, I, Q, KV = c.hidden_size, c.intermediate_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    return {"down_proj": (I, C), "gate_proj": (C, I), "k_proj": (C, KV), "o_proj": (Q, C),
            "q_proj": (C, Q), "up_proj": (C, I), "v_proj": (C, KV)}[name]


K = Li * 7 * NB * 2
init = {
    "prefix": 0.1 * torch.randn(P, dc),
    "mapper.fc1.weight": torch.randn(dc, dc) / dc ** 0.5,
    "mapper.fc1.bias": 0.1 * torch.randn(dc),
    "mapper.fc2.weight": torch.randn(K, dc) / dc ** 0.5,
    "mapper.fc2.bias": 0.1 * torch.randn(K),
}
for m in MODULES:
    din, dout = dims(m)
    init["mapper.A." + m] = torch.randn(NB, R, din) / din ** 0.5
    # Non-zero B bases (the training init has them at zero) so that every gradient path is exercised.
    init["mapper.B." + m] = 0.1 * torch.randn(NB, dout, R)
params = {k: v.clone().requires_grad_(True) for k, v in init.items()}

# A batch of two examples of different lengths.
g = torch.Generator().manual_seed(5)
comp_lens, interp_lens, target_lens = [7, 10], [6, 9], [3, 2]
comp_ids = [torch.randint(0, 300, (n,), generator=g) for n in comp_lens]
interp_ids = [torch.randint(0, 300, (n,), generator=g) for n in interp_lens]
target_ids = [torch.randint(0, 300, (n,), generator=g) for n in target_lens]
B = 2

# ---- compiler forward with the prefix, capturing states by hooks ----------------------------------
Tc = max(comp_lens) + P
emb = comp.model.embed_tokens
rows = []
for b in range(B):
    pad = torch.zeros(Tc - comp_lens[b] - P, dtype=torch.long)
    rows.append(torch.cat([emb(comp_ids[b]), params["prefix"], emb(pad)], 0))
x = torch.stack(rows)
captured = {}
hooks = []
for i, layer in enumerate(comp.model.layers):
    hooks.append(layer.register_forward_hook(
        lambda mod, inp, out, i=i: captured.__setitem__(i, out[0] if isinstance(out, tuple) else out)))
hooks.append(comp.model.norm.register_forward_hook(lambda mod, inp, out: captured.__setitem__("norm", out)))
comp.model(inputs_embeds=x)
for h in hooks:
    h.remove()
H = torch.stack([
    torch.stack([(captured["norm"] if s == Li - 1 else captured[teacher[s]])[b, comp_lens[b]:comp_lens[b] + P]
                 for s in range(Li)]) for b in range(B)])  # [B, Li, P, dc]

# ---- mapper -----------------------------------------------------------------------------------
mean = H.mean(dim=(1, 2))
gact = F.gelu(mean @ params["mapper.fc1.weight"].T + params["mapper.fc1.bias"])
coef = (gact @ params["mapper.fc2.weight"].T + params["mapper.fc2.bias"]).view(B, Li, 7, NB, 2)
lora = {}
for l in range(Li):
    for mi, m in enumerate(MODULES):
        A = torch.einsum("bn,nri->bri", coef[:, l, mi, :, 0], params["mapper.A." + m])
        Bm = torch.einsum("bn,nor->bor", coef[:, l, mi, :, 1], params["mapper.B." + m])
        lora[(l, m)] = (A, Bm)

# ---- interpreter with per-example LoRA on the 7 projections -------------------------------------
scale = ALPHA / R
hooks = []
for l, layer in enumerate(interp.model.layers):
    for m in MODULES:
        lin = getattr(layer.mlp if m in ("down_proj", "gate_proj", "up_proj") else layer.self_attn, m)
        def hook(mod, inp, out, key=(l, m)):
            A, Bm = lora[key]
            return out + scale * torch.einsum("btr,bor->bto", torch.einsum("bti,bri->btr", inp[0], A), Bm)
        hooks.append(lin.register_forward_hook(hook))
Ti = max(a + t for a, t in zip(interp_lens, target_lens))
ids = torch.zeros(B, Ti, dtype=torch.long)
labels = torch.full((B, Ti), -100, dtype=torch.long)
for b in range(B):
    seq = torch.cat([interp_ids[b], target_ids[b]])
    ids[b, :len(seq)] = seq
    labels[b, interp_lens[b]:len(seq)] = target_ids[b]
out = interp(input_ids=ids, labels=labels)
loss = out.loss
loss.backward()
for h in hooks:
    h.remove()

ref = {"loss": loss.detach().reshape(1)}
for n, p in comp.named_parameters():
    if p.grad is not None:
        ref["grad.compiler." + n] = p.grad.detach().clone()
for k, p in params.items():
    ref["grad." + k] = p.grad.detach().clone()
save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "reference.safetensors"), metadata={"format": "pt"})
save_file({k: v.contiguous() for k, v in init.items()}, os.path.join(OUT, "init.safetensors"), metadata={"format": "pt"})
batch = {}
for b in range(B):
    batch[f"comp_ids.{b}"] = comp_ids[b].int()
    batch[f"interp_ids.{b}"] = interp_ids[b].int()
    batch[f"target_ids.{b}"] = target_ids[b].int()
save_file(batch, os.path.join(OUT, "batch.safetensors"), metadata={"format": "pt", "prefix_steps": str(P),
          "lora_rank": str(R), "mapper_bases": str(NB), "lora_alpha": str(ALPHA)})
print("loss", loss.item(), "teacher", teacher)
