#!/usr/bin/env bash
# test_quantize.sh: `snipmeta quantize` and `snipmeta info` on a small model written here.
#
# A Perl helper (perl-base is part of every Debian system) writes a small f32 GGUF with weight
# matrices, a 1-D norm, a 2-D bias, a matrix whose rows are not whole blocks and a [n,1] weight,
# and reads GGUF files back with its own decoder (f16, bf16, q8_0, q4_0), independent of ours.
# For each target type it checks each tensor's type (only 2-D weights with whole blocks change),
# that every value is within its block's error bound, that the metadata is kept and
# general.file_type is llama.cpp's; that q8_0 -> f32 gives back the same values; that -t 1 and
# -t 2 write the same bytes; and that bad usage and bad files exit 2 with a message.
# Arguments: the snipmeta binary, the source dir, the shared dir. Exit 0 pass, 1 fail, 77 skip.
set -u
export LC_ALL=C
bin=$1
command -v perl >/dev/null || { echo "skip: no perl"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...: runs the command, reports
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

cat > "$work/gguf.pl" <<'PERL'
use strict; use warnings;
# write FILE: the test model.  check FILE ORIG TYPE BOUND: verifies FILE against ORIG (see below).
sub str { pack("Q<", length $_[0]) . $_[0] }
my @tensors = ( # name, ne, scale
    ["token_embd.weight", [64, 3], 1.0], ["blk.0.attn_norm.weight", [64], 1.0],
    ["blk.0.attn_q.weight", [64, 4], 0.02], ["blk.0.odd.weight", [48, 2], 3.0],
    ["blk.0.attn_q.bias", [64, 2], 0.5], ["blk.0.flat.weight", [64, 1], 1.0],
    ["blk.0.ffn_up.weight", [32, 2, 2], 100.0]);
sub values_of { my ($k, $t) = @_; my $n = 1; $n *= $_ for @{$t->[1]};
    map { my $r = int($_ / $t->[1][0]); $t->[2] * (1 + $r) * sin(0.37 * $_ + $k) * (($_ % 7) ? 1 : 0.01) } 0 .. $n - 1 }
sub write_model { my ($file) = @_;
    my $kv = str("general.architecture") . pack("V", 8) . str("llama")
           . str("general.file_type") . pack("V", 4) . pack("V", 0)
           . str("general.name") . pack("V", 8) . str("tiny test");
    my ($info, $data) = ("", "");
    for my $k (0 .. $#tensors) { my $t = $tensors[$k];
        $info .= str($t->[0]) . pack("V", scalar @{$t->[1]}) . pack("Q<*", @{$t->[1]}) . pack("V", 0) . pack("Q<", length $data);
        $data .= pack("f<*", values_of($k, $t));
        $data .= "\0" x ((32 - length($data) % 32) % 32); }
    my $head = "GGUF" . pack("V", 3) . pack("Q<", scalar @tensors) . pack("Q<", 3) . $kv . $info;
    $head .= "\0" x ((32 - length($head) % 32) % 32);
    open my $f, ">:raw", $file or die; print $f $head . $data; close $f; }
sub f16 { my $h = shift; my ($s, $e, $m) = ($h >> 15, ($h >> 10) & 31, $h & 1023);
    my $v = $e == 0 ? $m * 2**-24 : $e == 31 ? 9**9**9 : (1 + $m / 1024) * 2**($e - 15); $s ? -$v : $v }
sub read_gguf { my ($file) = @_; open my $f, "<:raw", $file or die "$file: $!"; local $/; my $b = <$f>; close $f;
    my $p = 0; my $rd = sub { my ($fmt, $n) = @_; my @v = unpack($fmt, substr($b, $p, $n)); $p += $n; wantarray ? @v : $v[0] };
    my $rs = sub { my $n = $rd->("Q<", 8); my $s = substr($b, $p, $n); $p += $n; $s };
    die "magic" unless $rd->("a4", 4) eq "GGUF"; $rd->("V", 4);
    my ($nt, $nkv) = ($rd->("Q<", 8), $rd->("Q<", 8)); my (%kv, @t);
    my %size = (0 => 1, 1 => 1, 2 => 2, 3 => 2, 4 => 4, 5 => 4, 6 => 4, 7 => 1, 10 => 8, 11 => 8, 12 => 8);
    for (1 .. $nkv) { my $k = $rs->(); my $ty = $rd->("V", 4);
        if ($ty == 8) { $kv{$k} = $rs->() } elsif ($ty == 4) { $kv{$k} = $rd->("V", 4) }
        elsif ($ty == 9) { my $et = $rd->("V", 4); my $n = $rd->("Q<", 8);
            for (1 .. $n) { $et == 8 ? $rs->() : $rd->("a*", $size{$et}) } $kv{$k} = "array" }
        else { $p += $size{$ty}; $kv{$k} = "?" } }
    my $align = $kv{"general.alignment"} // 32;
    for (1 .. $nt) { my $name = $rs->(); my $nd = $rd->("V", 4); my @ne = $rd->("Q<*", 8 * $nd);
        push @t, [$name, $rd->("V", 4), $rd->("Q<", 8), [@ne]] }
    my $data = $p + ($align - $p % $align) % $align;
    my %out;
    for my $t (@t) { my ($name, $ty, $off, $ne) = @$t; my $n = 1; $n *= $_ for @$ne; my $at = $data + $off; my (@v, @d);
        if ($ty == 0) { @v = unpack("f<*", substr($b, $at, 4 * $n)) }
        elsif ($ty == 1) { @v = map { f16($_) } unpack("v*", substr($b, $at, 2 * $n)) }
        elsif ($ty == 30) { @v = map { unpack("f<", pack("V", $_ << 16)) } unpack("v*", substr($b, $at, 2 * $n)) }
        elsif ($ty == 8) { for my $bl (0 .. $n / 32 - 1) { my $o = $at + 34 * $bl; my $d = f16(unpack("v", substr($b, $o, 2)));
                push @d, $d; push @v, map { $d * $_ } unpack("c32", substr($b, $o + 2, 32)) } }
        elsif ($ty == 2) { for my $bl (0 .. $n / 32 - 1) { my $o = $at + 18 * $bl; my $d = f16(unpack("v", substr($b, $o, 2)));
                my @q = unpack("C16", substr($b, $o + 2, 16)); push @d, $d;
                push @v, (map { $d * (($_ & 15) - 8) } @q), (map { $d * (($_ >> 4) - 8) } @q) } }
        else { die "type $ty" }
        $out{$name} = { type => $ty, v => \@v, d => \@d, ne => $ne } }
    return (\%kv, \%out) }
# check FILE TYPE BOUNDTYPE FTYPE: FILE came from the test model with weights in TYPE; values
# within the bound of BOUNDTYPE (the type they went through).
sub check { my ($file, $type, $btype, $ftype) = @_; my ($kv, $t) = read_gguf($file); my $bad = 0;
    my %id = (f32 => 0, f16 => 1, q4_0 => 2, q8_0 => 8, bf16 => 30); my $blk = ($type =~ /^q/) ? 32 : 1;
    $bad++, print "general.file_type $kv->{'general.file_type'}, want $ftype\n" unless $kv->{"general.file_type"} == $ftype;
    $bad++, print "metadata lost\n" unless $kv->{"general.name"} eq "tiny test" && $kv->{"general.architecture"} eq "llama"
        && $kv->{"general.quantization_version"} == 2;
    my $worst = 0;
    for my $k (0 .. $#tensors) { my $tt = $tensors[$k]; my $name = $tt->[0]; my $got = $t->{$name};
        my @ne = @{$tt->[1]}; my $dims = 1; for (1 .. $#ne) { $dims = $_ + 1 if $ne[$_] != 1 }
        my $conv = $name =~ /weight$/ && $dims >= 2 && $ne[0] % $blk == 0;
        my $want = $conv ? $id{$type} : 0;
        $bad++, print "$name: type $got->{type}, want $want\n" if $got->{type} != $want;
        my @x = values_of($k, $tt); my @y = @{$got->{v}};
        $bad++, print "$name: ", scalar @y, " values\n" if @y != @x;
        my $bt = $conv ? $btype : "f32";
        for my $bl (0 .. @x / 32 - 1 + (@x % 32 ? 1 : 0)) { my @xs = grep { $_ < @x } $bl * 32 .. $bl * 32 + 31;
            my $amax = 0; my $max = 0; for (@xs) { if (abs($x[$_]) > $amax) { $amax = abs($x[$_]); $max = $x[$_] } }
            for my $i (@xs) { my $err = abs($x[$i] - $y[$i]); my $fx = unpack("f<", pack("f<", $x[$i])); my $bound;
                if ($bt eq "f32") { $bound = abs($fx - $x[$i]) + 1e-30 }
                elsif ($bt eq "f16") { $bound = abs($fx) * 2**-11 + 2**-25 + abs($fx - $x[$i]) }
                elsif ($bt eq "bf16") { $bound = abs($fx) * 2**-8 + abs($fx - $x[$i]) + 1e-30 }
                elsif ($bt eq "q8_0") { my $d = $amax / 127; $bound = $d / 2 + 127 * $d * 2**-11 + 1e-6 * $amax }
                else { my $d = abs($max / 8); $bound = $d + 8 * $d * 2**-11 + 1e-6 * $amax }
                if ($err > $bound) { $bad++; print "$name\[$i]: $y[$i] for $x[$i], bound $bound\n" if $bad < 10 }
                $worst = $err / $bound if $conv && $err / $bound > $worst } } }
    printf "  %s as %s: largest error %.3f of the %s bound\n", $file =~ s{.*/}{}r, $type, $worst, $btype;
    exit($bad ? 1 : 0) }
my $cmd = shift; if ($cmd eq "write") { write_model(@ARGV) } else { check(@ARGV) }
PERL

in=$work/tiny.gguf
perl "$work/gguf.pl" write "$in" || { echo "FAIL cannot write the test model"; exit 1; }
"$bin" info "$in" > "$work/info.txt"; rc=$?
check "info exits 0" test $rc -eq 0
check "info accepts -q" "$bin" info -q "$in" >/dev/null
check "info lists 7 tensors" grep -q "total: 7 tensors" "$work/info.txt"
check "info shows general.name" grep -q 'general.name .*"tiny test"' "$work/info.txt"

declare -A ftype=([f32]=0 [f16]=1 [q4_0]=2 [q8_0]=7 [bf16]=32)
for t in q8_0 q4_0 f16 bf16 f32; do
    check "quantize to $t" "$bin" quantize "$in" "$work/$t.gguf" "$t" -t 2 -q
    check "$t: types, values and metadata" perl "$work/gguf.pl" check "$work/$t.gguf" "$t" "$t" "${ftype[$t]}"
    check "$t: info reads it" "$bin" info "$work/$t.gguf" >/dev/null
done
check "q8_0 -> f32 keeps the q8_0 values" "$bin" quantize "$work/q8_0.gguf" "$work/back.gguf" f32
check "q8_0 -> f32: values within the q8_0 bound" perl "$work/gguf.pl" check "$work/back.gguf" f32 q8_0 0
"$bin" quantize "$in" "$work/t1.gguf" q4_0 -t 1 2>/dev/null
check "-t 1 and -t 2 write the same bytes" cmp -s "$work/t1.gguf" "$work/q4_0.gguf"

# Bad usage and bad files: exit 2 with a message, no output file.
expect2() { # expect2 DESCRIPTION NEEDLE ARGS...
    local what=$1 needle=$2; shift 2
    "$bin" quantize "$@" > /dev/null 2> "$work/err.txt"; local rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$needle" "$work/err.txt" && [ ! -e "$work/bad.gguf" ]; then
        echo "ok   $what: $(head -1 "$work/err.txt")"
    else
        echo "FAIL $what: exit $rc, stderr: $(cat "$work/err.txt")"; fail=1
    fi
}
head -c 100 "$in" > "$work/truncated.gguf"
printf 'not a gguf file at all' > "$work/text.gguf"
expect2 "truncated input" "at byte" "$work/truncated.gguf" "$work/bad.gguf" q8_0
expect2 "not a GGUF file" "magic" "$work/text.gguf" "$work/bad.gguf" q8_0
expect2 "unknown type" "unknown type" "$in" "$work/bad.gguf" q5_k
expect2 "missing arguments" "expected" "$in" "$work/bad.gguf"
expect2 "bad thread count" "-t" "$in" "$work/bad.gguf" q8_0 -t 0
"$bin" info "$work/truncated.gguf" > /dev/null 2> "$work/err.txt"; rc=$?
check "info on a truncated file exits 2 naming the byte" test $rc -eq 2 -a -n "$(grep 'at byte' "$work/err.txt")"
"$bin" quantize "$work/missing.gguf" "$work/bad.gguf" q8_0 2> "$work/err.txt"; rc=$?
check "missing input fails with a message" test $rc -ne 0 -a -n "$(grep 'missing.gguf' "$work/err.txt")"

[ $fail -eq 0 ] && echo "test_quantize: ok"
exit $fail
