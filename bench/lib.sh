# bench/lib.sh: what the chat benchmarks (chat_bench.sh, soak.sh) share.
# Sourced, not run. Expects `src`, `build` and a `say` function; sets
# CHAT_LOAD and GALARELAY_BIN, `tmp` and `pids`, and an EXIT trap.

# The binaries: CHAT_LOAD / GALARELAY_BIN from the environment, or built.
bench_binaries() {
  if [[ -z ${CHAT_LOAD:-} || -z ${GALARELAY_BIN:-} ]]; then
    if [[ ! -f $build/CMakeCache.txt ]]; then
      cmake -S "$src" -B "$build" >&2
    fi
    cmake --build "$build" --target chat_load galarelay -j2 >&2
  fi
  CHAT_LOAD=${CHAT_LOAD:-$build/bench/chat_load}
  GALARELAY_BIN=${GALARELAY_BIN:-$build/galarelay}
}

# bench_fd_limit N: raise the descriptor limit for everything started
# here (a socket per viewer on each side); warn when N will not fit.
bench_fd_limit() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  if (( $(ulimit -n) < $1 )); then
    say "warning: ulimit -n $(ulimit -n) is below $1; raise the hard limit"
  fi
}

# bench_tmp NAME: a temp folder, and the processes in `pids` stopped and
# the folder removed (KEEP=1: kept) when the script exits.
bench_tmp() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/galarelay-$1-XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ ${KEEP:-0} == 1 ]]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
