#!/usr/bin/env python3
"""A seed for fuzz_program_members from a real program bundle: its four members in that target's
input format (each u16-length-prefixed). Usage: program_seed.py BUNDLE.paw OUT."""
import struct
import sys
import zipfile

names = ["adapter.gguf", "prompt_template.txt", "meta.json", "adapter_config.json"]
with zipfile.ZipFile(sys.argv[1]) as z:
    by_base = {n.rsplit("/", 1)[-1]: n for n in z.namelist()}
    pieces = [z.read(by_base[n]) for n in names]
assert all(len(p) < 65536 for p in pieces), "members must fit a u16 length"
open(sys.argv[2], "wb").write(b"".join(struct.pack("<H", len(p)) + p for p in pieces))
