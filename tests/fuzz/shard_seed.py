#!/usr/bin/env python3
"""A seed for fuzz_shard_payload from a real shard: its decoded index and first blocks in that
target's input format (a block count byte, then u16-length-prefixed index and blocks).
Usage: shard_seed.py SHARD OUT. Needs the zstd command."""
import struct
import subprocess
import sys

data = open(sys.argv[1], "rb").read()
ioff, isize = struct.unpack_from("<QQ", data, len(data) - 24)


def unzstd(frame):
    return subprocess.run(["zstd", "-d", "-c"], input=frame, capture_output=True, check=True).stdout


index = unzstd(data[ioff:ioff + isize])
n_examples, n_blocks = struct.unpack_from("<QI", index, 0)
blocks = []
for b in range(min(n_blocks, 3)):
    off, csize = struct.unpack_from("<QI", index, 24 + 32 * b)
    blocks.append(unzstd(data[off:off + csize]))
# Keep the index consistent with the blocks kept: their count and examples only.
kept = sum(struct.unpack_from("<I", index, 24 + 32 * b + 24)[0] for b in range(len(blocks)))
head = struct.pack("<QI", kept, len(blocks)) + index[12:24]
table = index[24:24 + 32 * len(blocks)]
lengths = index[24 + 32 * n_blocks:24 + 32 * n_blocks + 16 * kept]
pieces = [head + table + lengths] + blocks
out = bytes([len(blocks)]) + b"".join(struct.pack("<H", len(p)) + p for p in pieces)
assert all(len(p) < 65536 for p in pieces), "pieces must fit a u16 length"
open(sys.argv[2], "wb").write(out)
