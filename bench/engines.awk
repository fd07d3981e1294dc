# bench/engines' table: medians per engine and configuration, foreground ratios to `alone`.
# Input: runs.tsv (engine, config, rep, fg_per_s, p50_ms, p99_ms, p999_ms, bg_done,
# offload_done, daemon_cpu_pct, fg_cpu_wait_us_per_op). Variables: reps, seconds, configs (their order in the table).
function median(key, col,    n, i, j, t, a) {
  n = split(vals[key, col], a, " ")
  for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  return n == 0 ? 0 : a[int((n + 1) / 2)]
}
NR == 1 { next }
{
  key = $1 SUBSEP $2
  if (!(key in seen)) { seen[key] = 1; if (!($1 in engine_seen)) { engine_seen[$1] = 1; engines[++n_engines] = $1 } }
  for (c = 4; c <= 11; ++c) vals[key, c] = vals[key, c] " " $c
}
END {
  printf "Medians of %d repetitions, %d s measured each, 2 CPUs; fg = foreground, ratios to `alone`.\n\n", reps, seconds
  print "| engine | configuration | fg per s | fg p50 | fg p99 | fg p99.9 | fg per s / alone | p50 / alone | p99 / alone | p99.9 / alone | bg done | offload done | daemon CPU | fg CPU wait per op |"
  print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  n_configs = split(configs, config_list, " ")
  for (e = 1; e <= n_engines; ++e) for (c = 1; c <= n_configs; ++c) {
    if ((engines[e] SUBSEP config_list[c]) in seen) order[++count] = engines[e] SUBSEP config_list[c]
  }
  for (i = 1; i <= count; ++i) {
    split(order[i], k, SUBSEP)
    base = k[1] SUBSEP "alone"
    tput = median(order[i], 4); p50 = median(order[i], 5); p99 = median(order[i], 6); p999 = median(order[i], 7)
    bt = median(base, 4); b50 = median(base, 5); b99 = median(base, 6); b999 = median(base, 7)
    ratio = (bt > 0) ? sprintf("%.2f", tput / bt) : "—"
    r50 = (b50 > 0) ? sprintf("%.2f×", p50 / b50) : "—"
    r99 = (b99 > 0) ? sprintf("%.2f×", p99 / b99) : "—"
    r999 = (b999 > 0) ? sprintf("%.2f×", p999 / b999) : "—"
    bg = (k[2] == "alone") ? "—" : median(order[i], 8)
    off = (k[2] == "alone") ? "—" : median(order[i], 9)
    d = (k[2] ~ /^cpuclassd/) ? sprintf("%.2f%%", median(order[i], 10)) : "—"
    # Measured in-process for RocksDB's readers only (PostgreSQL's backends exit with pgbench).
    w = (k[1] == "rocksdb") ? sprintf("%.0f us", median(order[i], 11)) : "—"
    printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %.2f ms | %s | %s | %s | %s | %s | %s | %s | %s |\n", k[1], k[2], tput, p50, p99, p999, ratio, r50, r99, r999, bg, off, d, w
  }
  print ""
  print "bg done: PostgreSQL VACUUM FULL and CREATE INDEX statements finished; RocksDB MB compacted. offload done: backups (pg_dump | zstd) or zstd passes finished. fg CPU wait per op: RocksDB's reader threads' time runnable but waiting for a CPU (schedstat run_delay), per Get: a mean, to hold against the latency."
}
