# mpi_env.sh: sourced by the tests/test_mpi_*.sh scripts: whether MPI tests can run here, and
# how they start ranks on one machine.
#   mpi_usable BIN   0 when mpirun is here and BIN was linked with MPI (else prints why: skip)
#   mpi_run NP CMD.. runs CMD as NP ranks on this machine: oversubscribed (more ranks than
#                    cores is fine), unbound, shared memory without the single-copy mechanism
#                    (containers often forbid the ptrace it needs), allowed as root.
mpi_usable() {
  command -v mpirun > /dev/null || { echo "skip: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"; return 1; }
  if ! ldd "$1" 2>/dev/null | grep -q libmpi; then echo "skip: $1 built without MPI (SM_MPI)"; return 1; fi
  return 0
}
mpi_run() {
  local np=$1; shift
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none \
    timeout 600 mpirun --oversubscribe -np "$np" "$@"
}
