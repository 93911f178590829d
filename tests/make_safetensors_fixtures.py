#!/usr/bin/env python3
"""Reference safetensors files written and checked with the Python `safetensors` library.

  python3 tests/make_safetensors_fixtures.py
      writes tests/fixtures/safetensors/reference.safetensors (read by tests/test_safetensors.c).
  python3 tests/make_safetensors_fixtures.py --check FILE
      checks that FILE (written by the C writer, see tests/test_safetensors.c) holds exactly the
      reference tensors and metadata, loading it with safetensors.torch.
  python3 tests/make_safetensors_fixtures.py --hf-make DIR
      saves a tiny random Qwen3 model to DIR/orig with save_pretrained and copies its config to DIR/c.
  python3 tests/make_safetensors_fixtures.py --hf-check DIR
      loads DIR/c (whose model.safetensors the C writer produced from DIR/orig) with from_pretrained
      and checks that its logits equal those of DIR/orig.
"""
import argparse
import math
import os
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "safetensors", "reference.safetensors")

METADATA = {"format": "pt", "source": "make_safetensors_fixtures.py"}


def reference_tensors():
    # Values are exact in their dtypes; tests/test_safetensors.c spells out the same numbers.
    inf, nan = math.inf, math.nan
    return {
        "f32_mat": torch.tensor([(i - 2.5) * 0.75 for i in range(6)], dtype=torch.float32).reshape(2, 3),
        "f16_special": torch.tensor(
            [0.0, -0.0, 1.0, -2.5, 65504.0, 2.0**-14, 2.0**-24, inf, -inf, nan], dtype=torch.float16
        ),
        "bf16_vals": torch.tensor([1.0, -3.140625, 2.0**-130, 3.3895313892515355e38], dtype=torch.bfloat16).reshape(2, 2),
        "i32_vec": torch.tensor([-(2**31), -1, 0, 1, 2**31 - 1], dtype=torch.int32),
        "i64_vec": torch.tensor([-(2**62), 2**40 + 7, 2**63 - 1], dtype=torch.int64),
        "scalar": torch.tensor(42.5, dtype=torch.float32),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
    }


def same(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(
            torch.nan_to_num(a, nan=0.0).view(torch.int16 if a.element_size() == 2 else torch.int32),
            torch.nan_to_num(b, nan=0.0).view(torch.int16 if b.element_size() == 2 else torch.int32),
        )
    return torch.equal(a, b)


def check(path):
    got = load_file(path)
    want = reference_tensors()
    ok = True
    if set(got) != set(want):
        print(f"{path}: tensor names {sorted(got)} != {sorted(want)}")
        ok = False
    for name in want:
        if name in got and not same(got[name], want[name]):
            print(f"{path}: tensor {name} differs: {got[name]} vs {want[name]}")
            ok = False
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    if meta != METADATA:
        print(f"{path}: metadata {meta} != {METADATA}")
        ok = False
    with open(path, "rb") as f:
        hlen = int.from_bytes(f.read(8), "little")
    if hlen % 8:
        print(f"{path}: header length {hlen} is not a multiple of 8")
        ok = False
    print(f"{path}: {'OK' if ok else 'MISMATCH'}")
    return ok


def hf_make(d):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=False)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(os.path.join(d, "orig"))
    os.makedirs(os.path.join(d, "c"), exist_ok=True)
    shutil.copy(os.path.join(d, "orig", "config.json"), os.path.join(d, "c", "config.json"))


def hf_check(d):
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 5, 9, 33, 2]])
    out = []
    for sub in ("orig", "c"):
        m = AutoModelForCausalLM.from_pretrained(os.path.join(d, sub), torch_dtype=torch.bfloat16)
        out.append(m(ids).logits)
    ok = torch.equal(out[0], out[1])
    print(f"{d}: from_pretrained logits {'identical' if ok else 'DIFFER'}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check")
    ap.add_argument("--hf-make")
    ap.add_argument("--hf-check")
    a = ap.parse_args()
    if a.check:
        return 0 if check(a.check) else 1
    if a.hf_make:
        hf_make(a.hf_make)
        return 0
    if a.hf_check:
        return 0 if hf_check(a.hf_check) else 1
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(reference_tensors(), OUT, metadata=METADATA)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    return 0 if check(OUT) else 1


if __name__ == "__main__":
    sys.exit(main())
