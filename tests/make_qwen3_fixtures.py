#!/usr/bin/env python3
"""Reference fixtures for the Qwen3 model tests, from Hugging Face transformers.

Builds tiny random Qwen3 models of awkward shapes, saves them as Hugging Face checkpoint
directories, and records what transformers computes on them in fp32:
  tests/fixtures/qwen3/<name>/                 the checkpoint (config.json + safetensors)
  tests/fixtures/qwen3/<name>/reference.safetensors
      ids [B,T] i32, targets [B,T] i32, weights [B,T] f32 (loss mask, shifted like HF labels),
      logits [B,T,V], loss [1], dx0 [B,T,C] (gradient w.r.t. the input embeddings),
      grad.<hf parameter name> for every parameter, gen_prompt [P] i32, gen_out [G] i32
      (greedy generate with no stop token).

Run from the project root:  python3 tests/make_qwen3_fixtures.py
Needs torch, transformers, safetensors (pip). The C tests only read the committed output.
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file, load_file
from transformers import Qwen3Config, Qwen3ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "qwen3")

MODELS = {
    # GQA (4 query heads over 2 KV heads), head_dim 32 != hidden/heads = 16, tied embeddings, f32.
    "tiny-gqa-tied": dict(
        config=dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=32, vocab_size=256, max_position_embeddings=128,
                    rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True),
        dtype=torch.float32, shard=None, seed=1),
    # Untied LM head, 3 heads over 1 KV head, head_dim 24, rope_theta 5e6, bf16 storage in shards.
    "tiny-untied-bf16-sharded": dict(
        config=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=3,
                    num_key_value_heads=1, head_dim=24, vocab_size=300, max_position_embeddings=128,
                    rope_theta=5e6, rms_norm_eps=1e-6, tie_word_embeddings=False),
        dtype=torch.bfloat16, shard="40KB", seed=2),
}

B, T = 2, 11


def build(name, spec):
    torch.manual_seed(spec["seed"])
    cfg = Qwen3Config(**spec["config"], attn_implementation="eager")
    model = Qwen3ForCausalLM(cfg).float()
    # Random norm weights too, so a wrong norm layout cannot hide behind all-ones weights.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if spec["dtype"] == torch.bfloat16:
        model = model.to(torch.bfloat16)
    kw = dict(safe_serialization=True)
    if spec["shard"]:
        kw["max_shard_size"] = spec["shard"]
    model.save_pretrained(d, **kw)
    for f in ("generation_config.json",):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    # The reference is computed in fp32 from exactly the stored (possibly bf16-rounded) weights.
    model = Qwen3ForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    V, C = cfg.vocab_size, cfg.hidden_size

    g = torch.Generator().manual_seed(100 + spec["seed"])
    ids = torch.randint(0, V, (B, T), generator=g)
    # Loss mask in HF's labels form: a prompt part (-100) then target tokens, different per row.
    labels = ids.clone()
    labels[0, :4] = -100
    labels[1, :7] = -100
    labels[1, 9] = -100
    out = model(input_ids=ids, labels=labels)
    loss = out.loss
    loss.backward()
    logits = out.logits.detach()

    # Our convention: targets[t] = ids[t+1], weight[t] = 1 where labels[t+1] != -100.
    targets = torch.zeros(B, T, dtype=torch.int32)
    weights = torch.zeros(B, T)
    targets[:, :-1] = ids[:, 1:].int()
    weights[:, :-1] = (labels[:, 1:] != -100).float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long(), reduction="none")
    manual = (nll * weights.reshape(-1)).sum() / weights.sum()
    assert torch.allclose(manual, loss.detach(), rtol=1e-6), (manual, loss)

    ref = {
        "ids": ids.int().contiguous(),
        "targets": targets.contiguous(),
        "weights": weights.contiguous(),
        "logits": logits.contiguous(),
        "loss": loss.detach().reshape(1).contiguous(),
    }
    for n, p in model.named_parameters():
        ref["grad." + n] = p.grad.detach().contiguous()

    # Gradient w.r.t. the input embeddings (what a frozen model passes back to its inputs).
    model.zero_grad()
    emb = model.model.embed_tokens(ids).detach().requires_grad_(True)
    out2 = model(inputs_embeds=emb, labels=labels)
    out2.loss.backward()
    ref["dx0"] = emb.grad.detach().contiguous()

    # Greedy decoding reference.
    prompt = ids[0, :5]
    with torch.no_grad():
        gen = model.generate(prompt[None], max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=8)
    ref["gen_prompt"] = prompt.int().contiguous()
    ref["gen_out"] = gen[0, 5:].int().contiguous()
    save_file(ref, os.path.join(d, "reference.safetensors"), metadata={"format": "pt"})
    print(f"{name}: loss {loss.item():.6f}, {sum(p.numel() for p in model.parameters())} params")


def add_stored_lm_head_variant():
    """The tied model again, with lm_head.weight stored (some exporters write it)."""
    src = os.path.join(OUT, "tiny-gqa-tied")
    dst = os.path.join(OUT, "tiny-gqa-tied-stored-head")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "config.json"), dst)
    t = load_file(os.path.join(src, "model.safetensors"))
    t["lm_head.weight"] = t["model.embed_tokens.weight"].clone()
    save_file(t, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    for name, spec in MODELS.items():
        build(name, spec)
    add_stored_lm_head_variant()
