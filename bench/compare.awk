# Reads bench/compare's runs.tsv (config, rep, key=value...) and prints the markdown table of
# medians; writes the plot's data to the file `dat` when set. Variables: reps, seconds, cpus,
# spinners (--spinners-per-cpu, may be empty). Each tail percentile's ratio is to ideal's same one.
function median(config, key,    n, i, j, v, t) {
  n = count[config, key]
  if (n == 0) return "nan"
  for (i = 1; i <= n; i++) v[i] = val[config, key, i]
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
  return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function ms(x) { return x == "nan" ? "—" : sprintf("%.2f ms", x) }
function pct(x) { return x == "nan" ? "—" : sprintf("%.1f%%", 100 * x) }
function ratio(c, key,    v, i) {
  v = median(c, key); i = median("ideal", key)
  return v == "nan" || i == "nan" || i == 0 ? "—" : sprintf("%.2f×", v / i)
}
BEGIN {
  FS = "\t"
  split("ideal no-daemon nice19 sched-idle cpuclassd cpuclassd-before cpuclassd-lib cpuclassd-runin cpuclassd-lib-runin cpuclassd-slice cpuclassd-rt cpuclassd-lib-rt no-inversion offload-alone", order, " ")
}
{
  config = $1
  seen[config] = 1
  n = split($3, kv, " ")
  for (i = 1; i <= n; i++) {
    split(kv[i], p, "=")
    if (p[2] == "nan" || p[1] == "placed") continue
    val[config, p[1], ++count[config, p[1]]] = p[2]
    if (p[1] == "fg_requests" && p[2] > requests) requests = p[2]
  }
}
END {
  printf "Medians of %d repetitions, %s s measured each, %d CPUs%s; shares are of the whole machine; ÷ ideal: the same percentile's ratio to the ideal run's; p99.99 of ~%d requests per run is nearly their maximum.\n\n", reps, seconds, cpus,
    spinners == "" ? "" : sprintf(", %d background and %d offload spinners per CPU", spinners, spinners), requests
  print "| configuration | fg p50 | fg p99 | ÷ ideal | fg p99.9 | ÷ ideal | fg p99.99 | ÷ ideal | bg CPU | idle CPU | offload CPU | of it, bulk | awaited item p50 | awaited item p99 | helper done, p99 | new thread placed, p50 | daemon CPU |"
  print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for (o = 1; o in order; o++) {
    c = order[o]
    if (!(c in seen)) continue
    fg = c == "offload-alone"
    bg = c != "ideal" && c != "offload-alone"
    daemon = c ~ /cpuclassd|offload-alone|no-inversion/
    p99 = median(c, "fg_p99_ms")
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c,
      fg ? "—" : ms(median(c, "fg_p50_ms")), fg ? "—" : ms(p99), fg ? "—" : ratio(c, "fg_p99_ms"),
      fg ? "—" : ms(median(c, "fg_p999_ms")), fg ? "—" : ratio(c, "fg_p999_ms"),
      fg ? "—" : ms(median(c, "fg_p9999_ms")), fg ? "—" : ratio(c, "fg_p9999_ms"),
      bg ? pct(median(c, "bg_share")) : "—", pct(median(c, "idle_share")), c == "ideal" ? "—" : pct(median(c, "offload_share")),
      c == "ideal" ? "—" : pct(median(c, "offload_bulk_share")),
      bg ? ms(median(c, "inv_p50_ms")) : "—", bg ? ms(median(c, "inv_p99_ms")) : "—", bg ? ms(median(c, "inv_done_p99_ms")) : "—",
      daemon && !fg ? ms(median(c, "placement_p50_ms")) : "—", daemon ? pct(median(c, "daemon_cpu")) : "—"
    if (dat != "") {
      printf "%s %s %s %s %s %s %s\n", c, fg ? 0 : p99, bg ? median(c, "inv_p99_ms") : 0,
        c == "ideal" ? 0 : 100 * median(c, "offload_share"), bg ? 100 * median(c, "bg_share") : 0,
        c == "ideal" ? 0 : 100 * median(c, "offload_bulk_share"), fg ? 0 : median(c, "fg_p999_ms") > dat
    }
  }
}
