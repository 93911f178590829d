#!/usr/bin/env python3
"""Checks that a checkpoint directory written by paw loads with Hugging Face from_pretrained and
computes what the directory it came from computes (a by-hand interop check; needs torch and
transformers from pip, so it is not part of `make test`).

    python3 tests/check_export.py ORIGINAL_DIR EXPORTED_DIR      # e.g. a fixture and its paw export

Prints the largest absolute logit difference on a few token ids and exits 1 if it exceeds 1e-5
(0 when the weights were stored losslessly, as fp32 or as bf16 values saved again in bf16).
"""
import sys

import torch
from transformers import Qwen3ForCausalLM


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    a = Qwen3ForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)
    b = Qwen3ForCausalLM.from_pretrained(sys.argv[2], torch_dtype=torch.float32)
    ids = torch.arange(min(16, a.config.vocab_size))[None]
    with torch.no_grad():
        diff = (a(ids).logits - b(ids).logits).abs().max().item()
    print(f"max |logit difference| = {diff:.3g}")
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
