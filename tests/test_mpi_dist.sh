#!/usr/bin/env bash
# test_mpi_dist.sh: the process group's collectives (tests/test_dist.c) under `mpirun -np 2` and
# `-np 3` (an uneven split); skipped (77) when mpirun is absent or the build has no MPI.
# Usage: test_mpi_dist.sh SNIPMETA SOURCE_DIR SHARED_DIR
set -u
bin=$1; src=$2
. "$src/tests/mpi_env.sh"
test_dist=$(dirname "$bin")/test_dist
[ -x "$test_dist" ] || { echo "skip: $test_dist not built"; exit 77; }
mpi_usable "$test_dist" || exit 77
fails=0
for np in 2 3; do
  out=$(mpi_run $np "$test_dist" 2>&1)
  rc=$?
  echo "$out" | sed "s/^/np $np: /"
  [ $rc = 0 ] && echo "$out" | grep -q "ranks $np (MPI built in)" || { echo "FAIL: np $np: exit $rc"; fails=$((fails + 1)); }
done
[ $fails = 0 ] || exit 1
echo "test_mpi_dist: ok"
