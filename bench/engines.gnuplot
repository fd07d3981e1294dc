# bench/engines' plot: foreground p99.9 per configuration and engine, every run as a point.
# Variables: runs (runs.tsv), out (PNG).
set terminal pngcairo size 1000,500
set output out
set datafile separator "\t"
set title "Foreground p99.9 latency under background and offload work (every run)"
set ylabel "p99.9 (ms, log scale)"
set logscale y
set key top left
set xtics rotate by -30
idx(c) = (c eq "alone") ? 0 : (c eq "no-daemon") ? 1 : (c eq "nice19") ? 2 : (c eq "sched-idle") ? 3 : (c eq "cpuclassd") ? 4 : (c eq "cpuclassd-rt") ? 5 : 6
set xrange [-0.5:6.5]
set xtics ("alone" 0, "no-daemon" 1, "nice19" 2, "sched-idle" 3, "cpuclassd" 4, "cpuclassd-rt" 5, "cpuclassd-nosqueeze" 6)
plot runs every ::1 using (idx(strcol(2)) - 0.1):(strcol(1) eq "postgresql" ? $7 : 1/0) with points pt 7 title "PostgreSQL (pgbench -S)", \
     runs every ::1 using (idx(strcol(2)) + 0.1):(strcol(1) eq "rocksdb" ? $7 : 1/0) with points pt 5 title "RocksDB (Get)"
