#!/usr/bin/env perl
# A .cu file as host C++ for the CPU emulation (tests/emu/README.md): launches `k<<<g, b, s, st>>>(args)`
# become emu::Launch{"k", g, b, s, st}.call([=](auto... a) { k(a...); }, args), paw_launch(k, ...)
# names its kernel, `extern __shared__ T name[];` points at the launch's dynamic shared memory,
# `__shared__ T a[n];` is EMU_SHARED(T, a, [n]) (emu.h), and NULL is nullptr (a launch argument
# keeps its type until the kernel's call converts it). Line numbers are kept.
use strict;
use warnings;
local $/;
my ($in) = @ARGV;
open(my $fh, '<', $in) or die "cu2cc: $in: $!\n";
my $s = <$fh>;
my $kernel = qr/[A-Za-z_]\w*(?:<[^<>;()]*>)?/;
$s =~ s/($kernel)\s*<<<(.*?)>>>\s*\(/emu::Launch{"$1", $2}.call([=](auto... emu_a) { $1(emu_a...); }, /gs;
$s =~ s/\bpaw_launch\(\s*($kernel)\s*,/paw_launch_named("$1", $1,/g;
$s =~ s/extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w ]+?)\s+(\w+)\[\]\s*;/$1 *$2 = reinterpret_cast<$1 *>(::emu::dyn_smem());/g;
# `__shared__ [__align__(n)] T a[n], b;` -> EMU_SHARED(T, a, [n]) EMU_SHARED(T, b, ) (tests/emu/emu.h)
$s =~ s{(?<!extern )__shared__\s+(?:__align__\(\d+\)\s+)?([\w:]+)\s+([^;]+);}{
    my ($type, $decls) = ($1, $2);
    join(' ', map {
        /^\s*(\w+)\s*((?:\[[^\]]+\])*)\s*$/ or die "cu2cc: $in: cannot read __shared__ $type $decls\n";
        "EMU_SHARED($type, $1, $2)"
    } split(/,/, $decls))
}ge;
$s =~ s/\bNULL\b/nullptr/g;
print "#line 1 \"$in\"\n$s";
